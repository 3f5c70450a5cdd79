import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { ffprobe } from "./media.ts";
import { jobHelpers } from "./jobs.ts";
import { useStack } from "./stack.ts";
import { eventsOf, expectGapFree, expectProgressNeverBackwards, watchJob } from "./watch.ts";

/*
 * video.lipsync (seed 004's pro-sync) through the gateway, the model emulator standing in for the
 * lip-sync model; media facts, kind checks and project inheritance ride along. One stack for the file.
 */
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-video", "model-emulator", "gateway"] });

/** Runs ffmpeg on lavfi sources into a file of `ext` and returns its bytes. */
function make(ext: string, ...args: string[]): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "e2e-lipsync-"));
  try {
    const out = join(dir, `f.${ext}`);
    execFileSync("ffmpeg", ["-v", "error", ...args, out]);
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 3 s of test picture over silence: whatever sound the result has, a segment put it there. */
const silentTalk = () =>
  make("mp4", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=3", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest");
const tone = (hz: number, seconds: number) => make("wav", "-f", "lavfi", "-i", `sine=frequency=${hz}:duration=${seconds}:sample_rate=48000`);

/** RMS in dBFS of [from, to) s of the file's sound through a narrow band around `hz` (all of it when hz is absent). */
function bandRmsDb(bytes: Uint8Array, from: number, to: number, hz?: number): number {
  const dir = mkdtempSync(join(tmpdir(), "e2e-band-"));
  try {
    const file = join(dir, "a.mp4");
    writeFileSync(file, bytes);
    const band = hz ? `,bandpass=f=${hz}:width_type=q:w=8` : "";
    const r = spawnSync("ffmpeg", ["-v", "info", "-i", file, "-af", `atrim=${from}:${to}${band},astats=measure_overall=RMS_level:measure_perchannel=none`, "-f", "null", "-"]);
    const m = [...r.stderr.toString().matchAll(/RMS level dB:\s*(-?[\d.]+|-inf)/g)].at(-1);
    if (!m) throw new Error("no RMS level in ffmpeg's output");
    return m[1] === "-inf" ? -Infinity : Number(m[1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Grey levels of a box of the frame shown at `at` s. */
function greyBox(bytes: Uint8Array, at: number, b: { x: number; y: number; width: number; height: number }): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "e2e-grey-"));
  try {
    const file = join(dir, "v.mp4");
    writeFileSync(file, bytes);
    return new Uint8Array(execFileSync("ffmpeg", ["-v", "error", "-ss", String(at), "-i", file, "-frames:v", "1", "-vf", `crop=${b.width}:${b.height}:${b.x}:${b.y},format=gray`, "-f", "rawvideo", "-"]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const meanDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]!), 0) / a.length;

const { upload, download } = jobHelpers(ctx);

async function runJob(token: string, body: Record<string, unknown>) {
  const job = await ctx.api.post("/jobs", body, token);
  expect(job.status, JSON.stringify(job.body)).toBe(202);
  const events = eventsOf(await watchJob(ctx.stack.url, token, job.body.id, { since: 0, timeoutMs: 120_000 }));
  expectGapFree(events);
  expectProgressNeverBackwards(events);
  const final = (await ctx.api.get(`/jobs/${job.body.id}`, token)).body;
  expect(final.status, JSON.stringify(final.error)).toBe("succeeded");
  return { events, final };
}

/** Two segments, each with a tone of its own: 600 Hz over 0.5–1.2 s (from 0.3 s into its file), 1500 Hz over 2.0–2.8 s. */
async function twoSegments(token: string) {
  const video = await upload(token, "talk.mp4", "video/mp4", silentTalk());
  const low = await upload(token, "low.wav", "audio/wav", tone(600, 2));
  const high = await upload(token, "high.wav", "audio/wav", tone(1500, 1.5));
  const segments = [
    { start_time: 0.5, end_time: 1.2, audio_file_id: low.id, audio_start: 0.3, label: "Intro", color: "#FF9800" },
    { start_time: 2.0, end_time: 2.8, audio_file_id: high.id, label: "Main" },
  ];
  return { video, low, high, segments };
}

/** The output keeps the source's length and carries each segment's tone at its place, silence elsewhere. */
function expectTonesInPlace(bytes: Uint8Array) {
  const probe = ffprobe(bytes, "mp4");
  expect(Number(probe.format.duration)).toBeCloseTo(3, 1);
  expect(probe.streams.map((s: { codec_name: string }) => s.codec_name).sort()).toEqual(["aac", "h264"]);
  expect(bandRmsDb(bytes, 0.6, 1.1, 600)).toBeGreaterThan(-40);
  expect(bandRmsDb(bytes, 0.6, 1.1, 1500)).toBeLessThan(bandRmsDb(bytes, 0.6, 1.1, 600) - 20);
  expect(bandRmsDb(bytes, 2.1, 2.7, 1500)).toBeGreaterThan(-40);
  expect(bandRmsDb(bytes, 2.1, 2.7, 600)).toBeLessThan(bandRmsDb(bytes, 2.1, 2.7, 1500) - 20);
  for (const [from, to] of [[0, 0.4], [1.35, 1.85], [2.9, 3]] as const) expect(bandRmsDb(bytes, from, to)).toBeLessThan(-60);
}

describe("video.lipsync against the model emulator", () => {
  it("lip-syncs each segment: the video keeps its length, each segment's audio is at its place, progress says segment i of n", async () => {
    const u = await ctx.api.signUp();
    const { video, segments } = await twoSegments(u.token);
    const input = { file_id: video.id, segments, mode: "lipsync" };
    expect((await ctx.api.post("/jobs/estimate", { type: "video.lipsync", input }, u.token)).body).toMatchObject({ credits: 20, work: { segments: 2 } });

    const { events, final } = await runJob(u.token, { type: "video.lipsync", input });
    const logs = events.filter((e) => e.type === "log").map((e) => e.message as string);
    expect(logs.filter((m) => /^segment \d of 2/.test(m))).toEqual([expect.stringMatching(/^segment 1 of 2 \(Intro\)/), expect.stringMatching(/^segment 2 of 2 \(Main\)/)]);
    expect(events.some((e) => e.type === "progress" && e.stage === "segments" && e.progress > 5 && e.progress < 80)).toBe(true);
    expect(final.result).toMatchObject({
      mode: "lipsync",
      model: "sync/lipsync-2",
      duration_s: expect.closeTo(3, 1),
      segments: [
        { index: 0, start_time: 0.5, end_time: 1.2, audio_seconds: 0.7, label: "Intro" },
        { index: 1, start_time: 2, end_time: 2.8, audio_seconds: 0.8, label: "Main" },
      ],
    });
    expect(final.result.provider_runs).toHaveLength(2);
    expect(final.result.provider_runs[0]).toMatchObject({ name: "emulator", model: "sync/lipsync-2", synthetic: true });
    expect(final.credits).toMatchObject({ amount: 20, state: "captured" });
    const [file] = final.result.files;
    expect(file).toMatchObject({ filename: "talk-lipsync.mp4", content_type: "video/mp4" });
    expectTonesInPlace(await download(u.token, file.file_id));
  });

  it("dubs without the model (mode dub): the same placement, no model run, a quarter of the price; effects erase their box only", async () => {
    const u = await ctx.api.signUp();
    const source = silentTalk();
    const { segments } = await twoSegments(u.token);
    const video = await upload(u.token, "talk.mp4", "video/mp4", source);
    const box = { x: 40, y: 30, width: 40, height: 30 };
    const effects = [
      { start_time: 0, end_time: 3, bbox: box, type: "erasure" },
      { start_time: 0, end_time: 3, bbox: { x: 120, y: 90, width: 20, height: 20 }, type: "protection" },
    ];
    const { events, final } = await runJob(u.token, { type: "video.lipsync", input: { file_id: video.id, segments, mode: "dub", effects, effects_method: "blur" } });
    expect(final.result.effects).toEqual({ erased: [{ start_time: 0, end_time: 3, bbox: box }], skipped: [] });
    expect(events.filter((e) => e.type === "log" && /^segment \d of 2/.test(e.message))).toHaveLength(2);
    expect(final.result.mode).toBe("dub");
    expect(final.result.model).toBeUndefined();
    expect(final.provider_cost_usd).toBeNull();
    expect(final.credits).toMatchObject({ amount: 5, state: "captured" });
    const out = await download(u.token, final.result.files[0].file_id);
    expectTonesInPlace(out);
    expect(meanDiff(greyBox(source, 1.5, { x: 44, y: 34, width: 32, height: 22 }), greyBox(out, 1.5, { x: 44, y: 34, width: 32, height: 22 }))).toBeGreaterThan(8);
    expect(meanDiff(greyBox(source, 1.5, { x: 100, y: 0, width: 60, height: 28 }), greyBox(out, 1.5, { x: 100, y: 0, width: 60, height: 28 }))).toBeLessThan(4);
  });

  it("refuses a bad segment with 422 INVALID_SEGMENT_CONFIG naming its index, and more segments than the tier allows, reserving nothing", async () => {
    const u = await ctx.api.signUp();
    const { video, low, segments } = await twoSegments(u.token);
    const post = (segs: unknown[]) => ctx.api.post("/jobs", { type: "video.lipsync", input: { file_id: video.id, segments: segs, mode: "dub" } }, u.token);
    const backwards = await post([segments[0], { ...segments[1], start_time: 2.5, end_time: 2.2 }]);
    expectEnvelope(backwards, 422, "INVALID_SEGMENT_CONFIG");
    expect(backwards.body.error.details).toMatchObject({ segment_index: 1, start_time: 2.5, end_time: 2.2 });
    expect(backwards.body.error.message).toContain("segments[1]");
    expect((await post([segments[0], { ...segments[1], end_time: 3.5 }])).body.error.details).toMatchObject({ segment_index: 1, reason: "outside the video" });
    expect((await post([{ ...segments[0], start_time: 1, end_time: 2.2 }, segments[1]])).body.error.details).toMatchObject({ segment_index: 1, reason: "overlap" });
    expect((await post([{ ...segments[0], audio_start: 1.5, audio_end: 2.5 }])).body.error.details).toMatchObject({ segment_index: 0, reason: "outside the audio" });
    const four = [0, 0.5, 1, 1.5].map((t) => ({ start_time: t, end_time: t + 0.4, audio_file_id: low.id }));
    const tooMany = await post(four);
    expectEnvelope(tooMany, 422, "INVALID_INPUT");
    expect(tooMany.body.error.details).toMatchObject({ limit: "max_segments", value: 4, max: 3, tier: "free" });
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });
});

describe("around the edit jobs", () => {
  it("refuses with 422 a file of a kind the field does not take, naming the field", async () => {
    const u = await ctx.api.signUp();
    const { low, segments } = await twoSegments(u.token);
    const asVideo = await ctx.api.post("/jobs", { type: "video.lipsync", input: { file_id: low.id, segments, mode: "dub" } }, u.token);
    expectEnvelope(asVideo, 422, "INVALID_INPUT");
    expect(asVideo.body.error.details).toMatchObject({ field: "file_id", kind: "audio", accepted: ["video"] });
    const grade = await ctx.api.post("/jobs", { type: "video.color-grade", input: { file_id: low.id } }, u.token);
    expectEnvelope(grade, 422, "INVALID_INPUT");
    expect(grade.body.error.details).toMatchObject({ field: "file_id", kind: "audio" });
  });

  it("puts a job's outputs in the job's project", async () => {
    const u = await ctx.api.signUp();
    const { video, segments } = await twoSegments(u.token);
    const project_id = (await ctx.api.post("/projects", { name: "dub" }, u.token)).body.id as string;
    const { final } = await runJob(u.token, { type: "video.lipsync", input: { file_id: video.id, segments: segments.slice(0, 1), mode: "dub" }, project_id });
    const output = (await ctx.api.get(`/files/${final.result.files[0].file_id}`, u.token)).body.file;
    expect(output).toMatchObject({ folder: "output", project_id });
    expect((await ctx.api.get(`/files?project_id=${project_id}`, u.token)).body.data.map((f: { id: string }) => f.id)).toEqual([output.id]);
  });

  it("shows each file's media facts: codecs, sound and alpha, as metadata too", async () => {
    const u = await ctx.api.signUp();
    const { video, low } = await twoSegments(u.token);
    expect(video.metadata).toMatchObject({ width: 160, height: 120, fps: 25, duration: expect.closeTo(3, 1), video_codec: "h264", audio_codec: "aac", has_audio: true, has_alpha: false });
    expect(video.media).toMatchObject({ frame_rate: 25, duration_seconds: video.metadata.duration });
    expect(low.metadata).toMatchObject({ video_codec: null, audio_codec: "pcm_s16le", has_audio: true, duration: expect.closeTo(2, 2) });
    const alpha = make("mov", "-f", "lavfi", "-i", "color=c=red@0.5:s=32x32:rate=10:d=1,format=argb", "-c:v", "qtrle");
    const mov = await upload(u.token, "alpha.mov", "video/quicktime", alpha);
    expect(mov.metadata).toMatchObject({ video_codec: "qtrle", has_alpha: true, has_audio: false, audio_codec: null });
  });
});
