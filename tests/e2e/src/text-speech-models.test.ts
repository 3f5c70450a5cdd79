import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { ffprobe } from "./media.ts";
import { useStack } from "./stack.ts";
import { jobHelpers, succeeded } from "./jobs.ts";

/*
 * Text, scene prompts, screenplay breakdowns, speech and prompt enhancement through the gateway,
 * with the model emulator (its own process, Replicate's HTTP API) as the provider and espeak-ng
 * as the local speech engine.
 */
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "worker-audio", "model-emulator", "gateway"] });

const jobs = jobHelpers(ctx);
const { download } = jobs;
/** A job followed to its end, which must succeed; its final state. */
const runJob = async (token: string, type: string, input: Record<string, unknown>) => succeeded((await jobs.runJob(token, type, input)).final);

// Worked out by hand: 22 laid-out lines (0.375 of a page at 55 a page, 24 s at a page a minute).
const nightShift = [
  "Title: Night Shift",
  "",
  "INT. DINER - NIGHT",
  "",
  "Rain on the windows.",
  "",
  "MAE",
  "(pouring)",
  "More coffee?",
  "",
  "JOE",
  "Please.",
  "",
  "EXT. PARKING LOT - NIGHT",
  "",
  "JOE (V.O.)",
  "Should have left at ten.",
  "",
  "/* A cut scene:",
  "INT. CAR - NIGHT",
  "",
  "JOE",
  "Never mind.",
  "*/",
  "",
  "CUT TO:",
  "",
  "INT. DINER - DAY",
  "",
  "MAE",
  "[[she knows]]",
  "Morning, Joe.",
  "",
].join("\n");

describe("text and speech models end to end", () => {
  it("text.generate: the model's answer in the result and as a .txt file, marked synthetic", async () => {
    const u = await ctx.api.signUp();
    const final = await runJob(u.token, "text.generate", { prompt: "Describe a lighthouse at dusk.", system_prompt: "Be brief.", max_tokens: 64, save_as_file: true });
    expect(typeof final.result.text).toBe("string");
    expect(final.result.text.length).toBeGreaterThan(10);
    expect(final.result).toMatchObject({ model: "meta/meta-llama-3-8b-instruct", provider: { name: "emulator", synthetic: true, cost_usd: 0 } });
    expect(final.result.files).toEqual([expect.objectContaining({ filename: "text.txt", content_type: "text/plain" })]);
    expect((await download(u.token, final.result.files[0].file_id)).toString("utf8").trim()).toBe(final.result.text);
    expect(final.credits).toEqual({ amount: 1, state: "captured" });
  });

  it("text.scenes: exactly the scenes asked for, numbered, each with a prompt of the concept and its duration", async () => {
    const u = await ctx.api.signUp();
    const final = await runJob(u.token, "text.scenes", { concept_prompt: "Robot exploring Austin, Texas", num_scenes: 5, scene_duration: 6 });
    const scenes = final.result.scenes as { sequence: number; prompt: string; duration: number }[];
    expect(scenes.map((s) => s.sequence)).toEqual([1, 2, 3, 4, 5]);
    for (const s of scenes) {
      expect(s.prompt).toContain("Robot exploring Austin, Texas");
      expect(s.duration).toBe(6);
    }
    expect(final.result).toMatchObject({ total_duration: 30, attempts: 1, provider: { synthetic: true } });
  });

  it("text.script-analysis: the exact breakdown of a Fountain file, plus the model's notes", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "night-shift.fountain", "text/plain", new TextEncoder().encode(nightShift));
    expect(body.file).toMatchObject({ status: "ready" });
    const final = await runJob(u.token, "text.script-analysis", { file_id: body.file.id });
    const b = final.result.breakdown;
    expect(b.title).toBe("Night Shift");
    expect(b.scenes.map((s: Record<string, unknown>) => [s.number, s.int_ext, s.location, s.time_of_day, s.characters, s.speeches, s.page_eighths])).toEqual([
      ["1", "INT", "DINER", "NIGHT", ["MAE", "JOE"], 2, 1],
      ["2", "EXT", "PARKING LOT", "NIGHT", ["JOE"], 1, 1],
      ["3", "INT", "DINER", "DAY", ["MAE"], 1, 1],
    ]);
    expect(b.scenes.map((s: { line: number }) => s.line)).toEqual([3, 14, 28]);
    expect(b.characters).toEqual([
      { name: "JOE", speeches: 2, words: 6, scenes: 2, first_scene: "1" },
      { name: "MAE", speeches: 2, words: 4, scenes: 2, first_scene: "1" },
    ]);
    expect(b.locations).toEqual([
      { name: "DINER", int_ext: ["INT"], scenes: 2 },
      { name: "PARKING LOT", int_ext: ["EXT"], scenes: 1 },
    ]);
    expect(b.totals).toEqual({
      scenes: 3,
      interior: 2,
      exterior: 1,
      interior_exterior: 0,
      times_of_day: { NIGHT: 2, DAY: 1 },
      characters: 2,
      speeches: 4,
      dialogue_words: 10,
      parentheticals: 1,
      transitions: 1,
      dual_dialogues: 0,
    });
    expect([b.lines, b.page_count, b.runtime_seconds]).toEqual([22, 0.375, 24]);
    expect(final.result).toMatchObject({ notes_status: "made", notes: expect.any(String), provider: { name: "emulator", synthetic: true } });
    expect(final.credits).toEqual({ amount: 2, state: "captured" });
  });

  it("audio.tts with espeak-ng: speech that lasts longer for a longer text, as wav or mp3", async () => {
    const u = await ctx.api.signUp();
    const line = "The quick brown fox jumps over the lazy dog.";
    const short = await runJob(u.token, "audio.tts", { text: line });
    const long = await runJob(u.token, "audio.tts", { text: Array(4).fill(line).join(" "), format: "mp3", voice: "bm_george" });
    expect(short.result).toMatchObject({ engine: "espeak-ng", format: "wav", provider: { name: "local", synthetic: false } });
    expect(short.result.files[0]).toMatchObject({ filename: "speech.wav", content_type: "audio/wav" });
    expect(long.result.files[0]).toMatchObject({ filename: "speech.mp3", content_type: "audio/mpeg" });
    const wav = ffprobe(await download(u.token, short.result.files[0].file_id), "wav");
    const mp3 = ffprobe(await download(u.token, long.result.files[0].file_id), "mp3");
    expect(wav.streams[0]).toMatchObject({ codec_type: "audio", codec_name: "pcm_s16le", sample_rate: "24000", channels: 1 });
    expect(mp3.streams[0]).toMatchObject({ codec_type: "audio", codec_name: "mp3" });
    const [shortSeconds, longSeconds] = [Number(wav.format.duration), Number(mp3.format.duration)];
    expect(shortSeconds).toBeGreaterThan(1.5);
    expect(longSeconds).toBeGreaterThan(shortSeconds * 3);
    expect(short.result.duration_seconds).toBeCloseTo(shortSeconds, 1);
  });

  it("audio.tts at high quality: the provider's voice (the emulator's Kokoro), stored as our own file", async () => {
    const u = await ctx.api.signUp();
    const final = await runJob(u.token, "audio.tts", { text: "Hello from the provider.", quality: "high", voice: "af_bella" });
    expect(final.result).toMatchObject({ engine: expect.stringMatching(/^jaaari\/kokoro-82m/), provider: { name: "emulator", synthetic: true } });
    const audio = ffprobe(await download(u.token, final.result.files[0].file_id), "wav");
    expect(Number(audio.format.duration)).toBeGreaterThan(0.5);
    expect(final.credits).toEqual({ amount: 3, state: "captured" });
  });

  it("POST /prompts/enhance rewrites a prompt within the target's token budget, synchronously", async () => {
    const u = await ctx.api.signUp();
    const res = await ctx.api.post("/prompts/enhance", { prompt: "a lighthouse at dusk", job_type: "image.generate", family: "sdxl", quality: "fast", presets: ["cinematic"] }, u.token);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      original_prompt: "a lighthouse at dusk",
      strategy: "sdxl-keywords",
      job_type: "image.generate",
      family: "sdxl",
      quality: "fast",
      presets: ["cinematic"],
      model: "meta/meta-llama-3-8b-instruct",
      token_budget: 77,
      provider: { name: "emulator", synthetic: true },
    });
    expect(res.body.enhanced_prompt).toContain("a lighthouse at dusk");
    expect(res.body.enhanced_prompt.length).toBeGreaterThan("a lighthouse at dusk".length);
    expect(res.body.token_count).toBeLessThanOrEqual(77);
    expect(res.headers.get("x-ratelimit-limit")).toBe("30");

    const video = await ctx.api.post("/prompts/enhance", { prompt: "a fox running through snow", job_type: "video.generate", quality: "high" }, u.token);
    expect(video.body).toMatchObject({ family: "wan", strategy: "wan-cinematic", token_budget: 250, model: "meta/meta-llama-3-70b-instruct" });

    expectEnvelope(await ctx.api.post("/prompts/enhance", { prompt: "a fox", job_type: "video.generate", family: "sdxl" }, u.token), 422, "INVALID_INPUT");
    expectEnvelope(await ctx.api.post("/prompts/enhance", { prompt: "a fox" }), 401);
  });

  it("answers 502 PROVIDER_ERROR when the provider fails the prediction", async () => {
    const u = await ctx.api.signUp();
    expectEnvelope(await ctx.api.post("/prompts/enhance", { prompt: "a fox [emulator:fail]" }, u.token), 502, "PROVIDER_ERROR");
  });

  it("allows 30 enhancements a minute on the free tier, then 429 with Retry-After", async () => {
    const u = await ctx.api.signUp();
    // Windows are whole minutes: start early in one so the burst lands in a single window.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 40_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
    const burst = await Promise.all(Array.from({ length: 30 }, (_, i) => ctx.api.post("/prompts/enhance", { prompt: `a lighthouse, take ${i}` }, u.token)));
    expect(burst.map((r) => r.status)).toEqual(Array(30).fill(200));
    const refused = await ctx.api.post("/prompts/enhance", { prompt: "one more" }, u.token);
    expectEnvelope(refused, 429, "RATE_LIMITED");
    expect(refused.headers.get("x-ratelimit-limit")).toBe("30");
    expect(refused.headers.get("x-ratelimit-remaining")).toBe("0");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    // Job creation has its own bucket.
    expect((await ctx.api.post("/jobs/estimate", { type: "text.generate", input: { prompt: "hi" } }, u.token)).status).toBe(200);
  });
});
