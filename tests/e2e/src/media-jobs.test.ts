import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { ffprobe, makeNoisyAudio, makePng, makeVideo, meanColour, rmsDb } from "./media.ts";
import { useStack } from "./stack.ts";
import { jobHelpers } from "./jobs.ts";

const ctx = useStack();

const jobs = jobHelpers(ctx);
const { download } = jobs;

/** Enqueue, follow the WebSocket to the end; checks the event stream's invariants and that it opened with a snapshot and closed normally. */
async function runJob(token: string, type: string, input: Record<string, unknown>) {
  const run = await jobs.runJob(token, type, input);
  expect(run.watched.closeCode).toBe(1000);
  expect(run.watched.messages[0].type).toBe("snapshot");
  return run;
}

describe("media jobs, end to end", () => {
  it("resizes an image with sharp: the output has the asked size and format", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "photo.png", "image/png", await makePng(640, 480));
    const run = await runJob(u.token, "image.resize", { file_id: body.file.id, width: 320, height: 200, fit: "fill", format: "webp" });
    expect(run.terminal).toMatchObject({ type: "result", status: "succeeded" });
    expect(run.final).toMatchObject({ status: "succeeded", progress: 100, credits: { state: "captured" } });
    expect(run.final.started_at).toBeTruthy();
    expect(run.final.completed_at).toBeTruthy();
    const out = run.final.result.files[0];
    expect(out).toMatchObject({ content_type: "image/webp" });
    const meta = await sharp(Buffer.from(await download(u.token, out.file_id))).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([320, 200, "webp"]);
    const outputs = await ctx.api.get("/files?folder=output", u.token);
    expect(outputs.body.data.map((f: { id: string }) => f.id)).toContain(out.file_id);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 99, reserved: 0 });
  });

  it("makes a thumbnail", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "big.png", "image/png", await makePng(800, 600));
    const run = await runJob(u.token, "image.thumbnail", { file_id: body.file.id, width: 128, height: 128, format: "png" });
    const meta = await sharp(Buffer.from(await download(u.token, run.final.result.files[0].file_id))).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([128, 128, "png"]);
  });

  it("colour-grades a video with ffmpeg: same duration, H.264, audio kept, colours changed", async () => {
    const u = await ctx.api.signUp();
    // Long enough that its progress shows more than once: progress waits JOB_EVENT_DELAY_MS and a job that
    // ends first drops it (ADR 028), so a 2 s clip graded quickly once showed a single progress event.
    const clip = makeVideo(6, "320x240");
    const { body } = await ctx.api.upload(u.token, "clip.mp4", "video/mp4", clip);
    const run = await runJob(u.token, "video.color-grade", { file_id: body.file.id, preset: "Warm", exposure: 0.5, saturation: 160, contrast: 20 });
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    expect(run.events.filter((e) => e.type === "progress").length).toBeGreaterThan(1);
    const out = await download(u.token, run.final.result.files[0].file_id);
    const probe = ffprobe(out, "mp4");
    const video = probe.streams.find((s: { codec_type: string }) => s.codec_type === "video");
    expect(video.codec_name).toBe("h264");
    expect(probe.streams.some((s: { codec_type: string }) => s.codec_type === "audio")).toBe(true);
    expect(Number(probe.format.duration)).toBeCloseTo(6, 0);
    // The result says what the file is (storage's measurement of it, ADR 056).
    expect(run.final.result).toMatchObject({ codec: "h264", width: 320, height: 240, duration: Number(probe.format.duration) });
    const [r0, g0, b0] = meanColour(clip, "mp4");
    const [r1, g1, b1] = meanColour(out, "mp4");
    expect(r1 + g1 + b1).toBeGreaterThan(r0 + g0 + b0); // brighter (exposure +0.5)
    expect(r1 - b1).toBeGreaterThan(r0 - b0); // warmer
  });

  it("cleans up noisy audio: the noise drops relative to the signal", async () => {
    const u = await ctx.api.signUp();
    const noisy = makeNoisyAudio(2, 2);
    const { body } = await ctx.api.upload(u.token, "take.wav", "audio/wav", noisy);
    const run = await runJob(u.token, "audio.cleanup", { file_id: body.file.id, preset: "Heavy Denoise", aggression: 80, format: "wav" });
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    const clean = await download(u.token, run.final.result.files[0].file_id);
    // Signal-to-noise: tone section vs the noise-only section, before and after.
    const snrBefore = rmsDb(noisy, "wav", 0.3, 1.7) - rmsDb(noisy, "wav", 2.3, 3.7);
    const snrAfter = rmsDb(clean, "wav", 0.3, 1.7) - rmsDb(clean, "wav", 2.3, 3.7);
    expect(snrAfter - snrBefore).toBeGreaterThan(6);
    expect(run.final.result.duration).toBe(Number(ffprobe(clean, "wav").format.duration));
    expect(run.final.result.loudness_lufs).toEqual(expect.any(Number));
  });

  it("refuses at enqueue (422 naming the field) a job whose input is not an image, reserving nothing", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "clip.mp4", "video/mp4", makeVideo(1));
    const refused = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: body.file.id, width: 10 } }, u.token);
    expect(refused.status).toBe(422);
    expect(refused.body.error).toMatchObject({ code: "INVALID_INPUT", details: { field: "file_id", kind: "video", accepted: ["image"] } });
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(0);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });
});
