import { describe, expect, it } from "vitest";
import { jobHelpers } from "./jobs.ts";
import { ffprobe, makeNoisyAudio, makePng, rmsDb } from "./media.ts";
import { useStack } from "./stack.ts";

/*
 * The product-video and music-video pipeline types through the gateway, every stage an ordinary
 * job on its worker (the language and video models from the model emulator, the voice from the
 * local speech engine). One stack for the file.
 */
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "worker-video", "worker-audio", "model-emulator", "gateway"],
});
const jobs = jobHelpers(ctx);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls a run until it has ended (or 150 s pass); its last state. */
async function settledRun(token: string, id: string) {
  const deadline = Date.now() + 150_000;
  for (;;) {
    const p = (await ctx.api.get(`/pipelines/${id}`, token)).body;
    if (["succeeded", "failed", "canceled"].includes(p.status) || Date.now() > deadline) return p;
    await sleep(250);
  }
}
const stageOf = (p: any, name: string) => p.stages.find((s: { name: string }) => s.name === name);
const jobsOf = async (token: string, p: any, stage: string) => Promise.all(stageOf(p, stage).job_ids.map(async (id: string) => (await ctx.api.get(`/jobs/${id}`, token)).body));
const filesOf = (job: any): string[] => job.result.files.map((f: { file_id: string }) => f.file_id);
const streamsOf = (probe: any) => probe.streams.map((s: { codec_type: string }) => s.codec_type).sort();

describe("product-video and music-video pipelines", () => {
  it("lists both types with their stages and flavors", async () => {
    const types = (await ctx.api.get("/pipeline-types")).body.data;
    const product = types.find((t: { name: string }) => t.name === "product-video");
    expect(product).toMatchObject({ default_flavor: "default", input_schema: { required: ["product_name", "style", "cta_text"] } });
    expect(product.stages.map((s: { name: string }) => s.name)).toEqual(["script_gen", "voice_gen", "video_gen", "compositing"]);
    expect(product.flavors.map((f: { name: string }) => f.name)).toEqual(expect.arrayContaining(["default", "premium"]));
    const music = types.find((t: { name: string }) => t.name === "music-video");
    expect(music.stages.map((s: { name: string }) => s.name)).toEqual(["scenes", "character", "clips", "compose"]);
    expect(music.flavors.map((f: { name: string }) => f.name)).toEqual(expect.arrayContaining(["default", "example"]));
  });

  it("product-video: script → voice and a clip from the product image → an mp4 with the spoken script, the CTA over it and the product image", async () => {
    const u = await ctx.api.signUp();
    const image = await jobs.upload(u.token, "bottle.png", "image/png", await makePng(320, 240));
    const input = { product_name: "EcoWater Bottle", style: "modern", cta_text: "Buy Now!", product_image_file_id: image.id, duration: 2 };
    const created = await ctx.api.post("/pipelines", { type: "product-video", input }, u.token);
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    // Two texts at 1 credit, a voice at 1 a started minute, a 2 s clip at 5 a second, a compose at 20 a started minute.
    expect(created.body).toMatchObject({ status: "running", flavor: "default", estimate: { credits: 33, eta_seconds: expect.any(Number) } });

    const done = await settledRun(u.token, created.body.id);
    expect(done.status, JSON.stringify(done.error ?? done.stages)).toBe("succeeded");
    expect(done.stages.map((s: { status: string }) => s.status)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"]);

    const scriptJobs = await jobsOf(u.token, done, "script_gen");
    expect(scriptJobs).toHaveLength(2);
    const [script] = scriptJobs;
    const [voice] = await jobsOf(u.token, done, "voice_gen");
    expect(voice.input.text).toBe(`${script.result.text} Buy Now!`);
    const [clip] = await jobsOf(u.token, done, "video_gen");
    expect(clip.input).toMatchObject({ image_file_id: image.id, duration_s: 2 });
    const [compose] = await jobsOf(u.token, done, "compositing");
    expect(compose.input).toMatchObject({
      clips: [{ file_id: filesOf(clip)[0] }],
      audio: [{ file_id: filesOf(voice)[0], role: "voice" }],
      text_overlays: [{ text: "Buy Now!", start_time: 0, duration: 2 }],
      image_overlays: [{ file_id: image.id, duration: 2 }],
    });

    expect(done.outputs).toEqual(filesOf(compose));
    const video = await jobs.download(u.token, done.outputs[0]);
    const probe = ffprobe(video, "mp4");
    expect(streamsOf(probe)).toEqual(["audio", "video"]);
    expect(Number(probe.format.duration)).toBeCloseTo(2, 0);
    // The voice is heard, not a silent track.
    expect(rmsDb(video, "mp4", 0, 2)).toBeGreaterThan(-45);

    expect(done.credits).toBe([...scriptJobs, voice, clip, compose].reduce((sum, j) => sum + j.credits.amount, 0));
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100 - done.credits, reserved: 0 });
  });

  it("music-video: scenes and a character reference → a clip per scene from the reference → the clips composed over the song", async () => {
    const u = await ctx.api.signUp();
    const song = await jobs.upload(u.token, "song.wav", "audio/wav", makeNoisyAudio(2, 1));
    const input = { concept_prompt: "Robot exploring Austin, Texas", num_scenes: 2, style: "neon noir", scene_duration: 1, audio_file_id: song.id };
    const created = await ctx.api.post("/pipelines", { type: "music-video", input }, u.token);
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    // 2 scenes at 1 credit, one ~1 MP reference image at 2, two 1 s clips at 5 a second, a compose at 20.
    expect(created.body.estimate.credits).toBe(33);
    // The scenes and the character reference start together.
    expect(created.body.stages.slice(0, 2).map((s: { job_ids: string[] }) => s.job_ids.length)).toEqual([1, 1]);

    const done = await settledRun(u.token, created.body.id);
    expect(done.status, JSON.stringify(done.error ?? done.stages)).toBe("succeeded");

    const [scenes] = await jobsOf(u.token, done, "scenes");
    expect(scenes.result.scenes).toHaveLength(2);
    const [character] = await jobsOf(u.token, done, "character");
    const clips = await jobsOf(u.token, done, "clips");
    expect(clips.map((c) => c.input.prompt)).toEqual(scenes.result.scenes.map((s: { prompt: string }) => s.prompt));
    expect(clips.map((c) => c.input.image_file_id)).toEqual([filesOf(character)[0], filesOf(character)[0]]);
    const [compose] = await jobsOf(u.token, done, "compose");
    expect(compose.input).toMatchObject({ clips: clips.map((c) => ({ file_id: filesOf(c)[0] })), audio: [{ file_id: song.id, role: "music" }] });

    const probe = ffprobe(await jobs.download(u.token, done.outputs[0]), "mp4");
    expect(streamsOf(probe)).toEqual(["audio", "video"]);
    expect(Number(probe.format.duration)).toBeCloseTo(2, 0);
    expect(done.credits).toBe([scenes, character, ...clips, compose].reduce((sum, j) => sum + j.credits.amount, 0));
  });
});
