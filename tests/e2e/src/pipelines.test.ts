import { describe, expect, it } from "vitest";
import { ffprobe, makeNoisyAudio } from "./media.ts";
import { useStack } from "./stack.ts";
import { jobHelpers } from "./jobs.ts";

/*
 * Pipelines through the gateway, every stage an ordinary job run by its worker against the model
 * emulator (its own process, as `npm start` runs it without a token). One stack for the file.
 */
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "worker-video", "model-emulator", "gateway"] });
const jobs = jobHelpers(ctx);

const credits = async (token: string) => (await ctx.api.get("/billing/credits", token)).body;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls a run until `done` says so (or 90 s pass); its last state. */
async function waitFor(token: string, id: string, done: (p: any) => boolean) {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const p = (await ctx.api.get(`/pipelines/${id}`, token)).body;
    if (done(p) || Date.now() > deadline) return p;
    if (["failed", "canceled"].includes(p.status)) return p;
    await sleep(250);
  }
}
const stageOf = (p: any, name: string) => p.stages.find((s: { name: string }) => s.name === name);
/** The output file ids of a stage's jobs, in job order. */
const outputsOf = async (token: string, p: any, stage: string) => {
  const ids: string[] = [];
  for (const jobId of stageOf(p, stage).job_ids) ids.push(...(await ctx.api.get(`/jobs/${jobId}`, token)).body.result.files.map((f: { file_id: string }) => f.file_id));
  return ids;
};

describe("storyboard pipelines", () => {
  it("lists the pipeline types with their input schema, stages and flavors", async () => {
    const types = await ctx.api.get("/pipeline-types");
    expect(types.status).toBe(200);
    const storyboard = types.body.data.find((t: { name: string }) => t.name === "storyboard");
    expect(storyboard).toMatchObject({ default_flavor: "default", input_schema: { type: "object", required: ["prompt", "video_prompt"] } });
    expect(storyboard.stages.map((s: { name: string; kind: string }) => `${s.name}:${s.kind}`)).toEqual(["images:jobs", "approve_images:gate", "clips:jobs", "approve_clips:gate", "compose:jobs"]);
    expect(storyboard.flavors.map((f: { name: string }) => f.name)).toEqual(expect.arrayContaining(["default", "cinematic"]));
  });

  it("runs images → approval → clips of the approved images only → approval → an mp4 with the text and the audio", async () => {
    const u = await ctx.api.signUp();
    const audio = await jobs.upload(u.token, "music.wav", "audio/wav", makeNoisyAudio(2, 2));
    const input = {
      prompt: "a man buys a hat",
      num_images: 2,
      aspect_ratio: "16:9",
      video_prompt: "he tips the hat",
      duration: 2,
      text_overlays: [{ text: "Chapter 1", start_time: 0, duration: 1 }],
      audio_file_id: audio.id,
    };
    const created = await ctx.api.post("/pipelines", { type: "storyboard", input }, u.token);
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    // 2 images at 2 credits, 2 clips of 2 s at 5 a second, a 4 s compose at 20 a started minute.
    expect(created.body).toMatchObject({ status: "running", flavor: "default", estimate: { credits: 44, eta_seconds: expect.any(Number) } });
    const id = created.body.id as string;

    const atImages = await waitFor(u.token, id, (p) => p.status === "waiting_approval");
    expect(atImages.status).toBe("waiting_approval");
    expect(stageOf(atImages, "approve_images").status).toBe("waiting_approval");
    expect(stageOf(atImages, "clips").status).toBe("pending");
    const images = await outputsOf(u.token, atImages, "images");
    expect(images).toHaveLength(2);
    // Still waiting a moment later: nothing goes on without the user.
    await sleep(1000);
    expect((await ctx.api.get(`/pipelines/${id}`, u.token)).body.status).toBe("waiting_approval");

    const notOurs = await ctx.api.post(`/pipelines/${id}/approve`, { stage: "approve_images", file_ids: [audio.id] }, u.token);
    expect(notOurs.status).toBe(422);
    expect(notOurs.body.error).toMatchObject({ code: "INVALID_INPUT", request_id: expect.any(String) });
    expect((await ctx.api.post(`/pipelines/${id}/approve`, { stage: "approve_clips", file_ids: [] }, u.token)).status).toBe(409);
    const approved = await ctx.api.post(`/pipelines/${id}/approve`, { stage: "approve_images", file_ids: [images[1]] }, u.token);
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);

    const atClips = await waitFor(u.token, id, (p) => stageOf(p, "approve_clips").status === "waiting_approval");
    expect(stageOf(atClips, "approve_clips").status).toBe("waiting_approval");
    const clipJobs = await Promise.all(stageOf(atClips, "clips").job_ids.map(async (j: string) => (await ctx.api.get(`/jobs/${j}`, u.token)).body));
    // Exactly the approved image, as the clip's first frame.
    expect(clipJobs.map((j) => j.input.image_file_id)).toEqual([images[1]]);
    const clips = await outputsOf(u.token, atClips, "clips");
    expect((await ctx.api.post(`/pipelines/${id}/approve`, { stage: "approve_clips", file_ids: clips }, u.token)).status).toBe(200);

    const done = await waitFor(u.token, id, (p) => p.status === "succeeded");
    expect(done.status, JSON.stringify(done.error ?? done.stages)).toBe("succeeded");
    expect(done.progress).toBe(100);
    expect(done.outputs).toHaveLength(1);
    const probe = ffprobe(await jobs.download(u.token, done.outputs[0]), "mp4");
    expect(probe.streams.map((s: { codec_type: string }) => s.codec_type).sort()).toEqual(["audio", "video"]);
    expect(Number(probe.format.duration)).toBeCloseTo(2, 0);
    const compose = (await ctx.api.get(`/jobs/${stageOf(done, "compose").job_ids[0]}`, u.token)).body;
    expect(compose.input).toMatchObject({ clips: [{ file_id: clips[0] }], text_overlays: [{ text: "Chapter 1" }], audio: [{ file_id: audio.id }] });
    // The run's credits are its jobs' credits: 4 for the images, 10 for the one clip, 20 for the compose.
    expect(done.credits).toBe(34);
    expect(await credits(u.token)).toMatchObject({ credits: 66, reserved: 0 });
  });

  it("cancels a run mid-stage: its running job is canceled and the credits not spent come back", async () => {
    const u = await ctx.api.signUp();
    const input = { prompt: "[emulator:slow] a long shot of the sea", num_images: 1, video_prompt: "waves", duration: 1 };
    const created = await ctx.api.post("/pipelines", { type: "storyboard", input }, u.token);
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const id = created.body.id as string;
    const jobId = created.body.stages[0].job_ids[0] as string;
    for (let i = 0; i < 100 && (await ctx.api.get(`/jobs/${jobId}`, u.token)).body.status !== "running"; i++) await sleep(100);
    expect(await credits(u.token)).toMatchObject({ reserved: 2 });

    const canceled = await ctx.api.post(`/pipelines/${id}/cancel`, {}, u.token);
    expect(canceled.status, JSON.stringify(canceled.body)).toBe(200);
    expect(canceled.body).toMatchObject({ credits_refunded: 2, pipeline: { status: "canceled", credits: 0 } });
    expect((await ctx.api.get(`/jobs/${jobId}`, u.token)).body).toMatchObject({ status: "canceled", credits: { state: "released" } });
    expect(await credits(u.token)).toMatchObject({ credits: 100, reserved: 0 });
    expect((await ctx.api.post(`/pipelines/${id}/cancel`, {}, u.token)).status).toBe(409);
  });

  it("keeps a run to its owner: another user cannot see, list, approve or cancel it (404)", async () => {
    const owner = await ctx.api.signUp();
    const other = await ctx.api.signUp();
    const created = await ctx.api.post("/pipelines", { type: "storyboard", input: { prompt: "[emulator:slow] a hat", num_images: 1, video_prompt: "spin" } }, owner.token);
    expect(created.status).toBe(202);
    const id = created.body.id;
    const seen = await ctx.api.get(`/pipelines/${id}`, other.token);
    expect(seen.status).toBe(404);
    expect(seen.body.error).toMatchObject({ code: "NOT_FOUND" });
    expect((await ctx.api.post(`/pipelines/${id}/approve`, { stage: "approve_images", file_ids: [] }, other.token)).status).toBe(404);
    expect((await ctx.api.post(`/pipelines/${id}/cancel`, {}, other.token)).status).toBe(404);
    expect((await ctx.api.get("/pipelines", other.token)).body.total).toBe(0);
    expect((await ctx.api.get("/pipelines?status=running", owner.token)).body.data.map((p: { id: string }) => p.id)).toEqual([id]);
    expect((await ctx.api.post(`/pipelines/${id}/cancel`, {}, owner.token)).status).toBe(200);
  });

  it("refuses bad input with 422 and the fields, an unknown type with 422, and a first stage the user cannot afford with 402", async () => {
    const u = await ctx.api.signUp();
    const bad = await ctx.api.post("/pipelines", { type: "storyboard", input: { prompt: "x", num_images: 9 } }, u.token);
    expect(bad.status).toBe(422);
    expect(bad.body.error.details.fields.map((f: { path: string }) => f.path)).toEqual(expect.arrayContaining(["num_images", "video_prompt"]));
    expect((await ctx.api.post("/pipelines", { type: "nope", input: {} }, u.token)).status).toBe(422);
    // 8 images at the cinematic flavor's high quality reserve 40 credits: two runs hold 80 of the 100, a third is refused.
    const cinematic = { type: "storyboard", flavor: "cinematic", input: { prompt: "[emulator:slow] x", num_images: 8, video_prompt: "y" } };
    const held = [await ctx.api.post("/pipelines", cinematic, u.token), await ctx.api.post("/pipelines", cinematic, u.token)];
    expect(held.map((r) => r.status)).toEqual([202, 202]);
    const poor = await ctx.api.post("/pipelines", cinematic, u.token);
    expect(poor.status, JSON.stringify(poor.body)).toBe(402);
    for (const run of held) await ctx.api.post(`/pipelines/${run.body.id}/cancel`, {}, u.token);
    expect(poor.body.error).toMatchObject({ code: "INSUFFICIENT_CREDITS", details: { required: 40 } });
  });
});
