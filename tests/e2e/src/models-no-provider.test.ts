import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { ffprobe, makeNoisyAudio, makeVideo } from "./media.ts";
import { useStack } from "./stack.ts";
import { eventsOf, watchJob } from "./watch.ts";

// A stack with no token and no emulator: only local engines could run, so hosted models are refused up front.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "worker-video", "gateway"] });

describe("a stack without any model provider", () => {
  it("answers POST /jobs for a hosted model with 503 PROVIDER_UNAVAILABLE, reserving nothing and recording no job", async () => {
    const u = await ctx.api.signUp();
    const body = { type: "image.generate", input: { prompt: "a lighthouse", num_images: 4, quality: "premium" } };
    const refused = await ctx.api.post("/jobs", body, u.token, { "idempotency-key": "no-provider-1" });
    expectEnvelope(refused, 503, "PROVIDER_UNAVAILABLE");
    expect(refused.body.error.details).toMatchObject({ type: "image.generate", provider: "none" });
    expectEnvelope(await ctx.api.post("/jobs/estimate", body, u.token), 503, "PROVIDER_UNAVAILABLE");
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(0);
  });

  it("still removes a green screen with the local chroma key, while the background-removal model is 503", async () => {
    const u = await ctx.api.signUp();
    const png = await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="200" height="150"><rect width="100%" height="100%" fill="#2db446"/><circle cx="100" cy="75" r="30" fill="#c83c2a"/></svg>`)).png().toBuffer();
    const file = (await ctx.api.upload(u.token, "studio.png", "image/png", png)).body.file.id;
    expectEnvelope(await ctx.api.post("/jobs", { type: "image.remove-background", input: { file_id: file, method: "model" } }, u.token), 503, "PROVIDER_UNAVAILABLE");
    const job = await ctx.api.post("/jobs", { type: "image.remove-background", input: { file_id: file, method: "chroma_key" } }, u.token);
    expect(job.status, JSON.stringify(job.body)).toBe(202);
    const watched = await watchJob(ctx.stack.url, u.token, job.body.id, { since: 0, timeoutMs: 60_000 });
    expect(eventsOf(watched).at(-1)).toMatchObject({ type: "result", status: "succeeded" });
    const final = (await ctx.api.get(`/jobs/${job.body.id}`, u.token)).body;
    expect(final.result).toMatchObject({ method: "chroma_key", provider: { name: "local", model: "chroma-key" } });
    expect(final.credits).toMatchObject({ amount: 1, state: "captured" });
  });

  it("still breaks a screenplay down (a local engine), without notes, while text generation is refused", async () => {
    const u = await ctx.api.signUp();
    const script = "INT. DINER - NIGHT\n\nMAE\nMore coffee?\n\nEXT. LOT - DAY\n\nJOE\nNo.\n";
    const file = (await ctx.api.upload(u.token, "diner.fountain", "text/plain", new TextEncoder().encode(script))).body.file.id;
    const job = await ctx.api.post("/jobs", { type: "text.script-analysis", input: { file_id: file } }, u.token);
    expect(job.status, JSON.stringify(job.body)).toBe(202);
    const watched = await watchJob(ctx.stack.url, u.token, job.body.id, { since: 0, timeoutMs: 60_000 });
    expect(eventsOf(watched).at(-1)).toMatchObject({ type: "result", status: "succeeded" });
    const final = (await ctx.api.get(`/jobs/${job.body.id}`, u.token)).body;
    expect(final.result).toMatchObject({ notes: null, notes_status: "no_provider", provider: { name: "local", model: "fountain" } });
    expect(final.result.breakdown.scenes.map((s: { heading: string }) => s.heading)).toEqual(["INT. DINER - NIGHT", "EXT. LOT - DAY"]);
    expect(final.result.breakdown.characters.map((c: { name: string }) => c.name)).toEqual(["JOE", "MAE"]);
    expectEnvelope(await ctx.api.post("/jobs", { type: "text.generate", input: { prompt: "hello" } }, u.token), 503, "PROVIDER_UNAVAILABLE");
  });

  it("dubs a video's segments (video.lipsync mode dub), while lip-sync itself is 503 PROVIDER_UNAVAILABLE", async () => {
    const u = await ctx.api.signUp();
    const video = (await ctx.api.upload(u.token, "talk.mp4", "video/mp4", makeVideo(2))).body.file.id;
    const voice = (await ctx.api.upload(u.token, "voice.wav", "audio/wav", makeNoisyAudio(1, 1))).body.file.id;
    const input = { file_id: video, segments: [{ start_time: 0.5, end_time: 1.5, audio_file_id: voice }] };
    const refused = await ctx.api.post("/jobs", { type: "video.lipsync", input: { ...input, mode: "lipsync" } }, u.token);
    expectEnvelope(refused, 503, "PROVIDER_UNAVAILABLE");
    expect(refused.body.error.details).toMatchObject({ type: "video.lipsync", provider: "none" });
    const job = await ctx.api.post("/jobs", { type: "video.lipsync", input: { ...input, mode: "dub" } }, u.token);
    expect(job.status, JSON.stringify(job.body)).toBe(202);
    const watched = await watchJob(ctx.stack.url, u.token, job.body.id, { since: 0, timeoutMs: 60_000 });
    expect(eventsOf(watched).at(-1)).toMatchObject({ type: "result", status: "succeeded" });
    const final = (await ctx.api.get(`/jobs/${job.body.id}`, u.token)).body;
    expect(final.result).toMatchObject({ mode: "dub", duration_s: expect.closeTo(2, 1) });
    const link = (await ctx.api.get(`/files/${final.result.files[0].file_id}/download-url`, u.token)).body.url;
    expect(Number(ffprobe(new Uint8Array(await (await fetch(link)).arrayBuffer()), "mp4").format.duration)).toBeCloseTo(2, 1);
  });

  it("answers POST /prompts/enhance with 503 PROVIDER_UNAVAILABLE, taking no slot of the rate bucket", async () => {
    const u = await ctx.api.signUp();
    for (let i = 0; i < 31; i++) {
      const refused = await ctx.api.post("/prompts/enhance", { prompt: "a lighthouse" }, u.token);
      expectEnvelope(refused, 503, "PROVIDER_UNAVAILABLE");
      expect(refused.body.error.details).toMatchObject({ provider: "none" });
    }
  });

  it("says so on /health and in GET /job-types", async () => {
    const health = await ctx.api.request("GET", "/health");
    expect(health.body.checks.models).toEqual({ status: "unknown", provider: "none" });
    const types = await ctx.api.get("/job-types");
    const generate = types.body.data.find((t: { type: string }) => t.type === "image.generate");
    expect(generate.models.every((l: { available: boolean }) => !l.available)).toBe(true);
  });
});
