import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { measureAudio, probe, runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assembleArgs, partsOf, segmentAudioArgs, segmentVideoArgs } from "./lipsync-graph.ts";

let dir: string;
const make = (name: string, ...args: string[]) => {
  const path = join(dir, name);
  execFileSync("ffmpeg", ["-v", "error", "-y", ...args, path]);
  return path;
};

beforeAll(() => {
  dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "lipsync-graph-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the lip-sync graph", () => {
  it("splits the video into its segments and the untouched spans between them, in order", () => {
    const plan = [
      { index: 1, start: 2, end: 2.5, audioStart: 0, audioSeconds: 0.5 },
      { index: 0, start: 0, end: 1, audioStart: 0, audioSeconds: 1 },
    ];
    expect(partsOf(plan, 3, (s) => ({ audioPath: `a${s.index}.wav` }))).toEqual([
      { kind: "segment", start: 0, end: 1, audioPath: "a0.wav" },
      { kind: "original", start: 1, end: 2 },
      { kind: "segment", start: 2, end: 2.5, audioPath: "a1.wav" },
      { kind: "original", start: 2.5, end: 3 },
    ]);
  });

  it("dubs: each segment carries its own audio at its place, the rest keeps the source's silence, and the length stays", async () => {
    const video = make("v.mp4", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "3", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest");
    const tone = make("tone.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=2");
    const cut = join(dir, "seg.wav");
    // 0.6 s of tone from 0.5 s into it, padded with silence to the 1 s segment.
    await runFfmpegArgs(segmentAudioArgs({ audioPath: tone, audioStart: 0.5, audioSeconds: 0.6, segmentSeconds: 1, output: cut }));
    expect((await probe(cut)).duration).toBeCloseTo(1, 2);
    const out = join(dir, "out.mp4");
    const parts = partsOf([{ index: 0, start: 1, end: 2, audioStart: 0.5, audioSeconds: 0.6 }], 3, () => ({ audioPath: cut }));
    await runFfmpegArgs(assembleArgs({ videoPath: video, hasAudio: true, parts, format: { width: 160, height: 120, fps: 25 }, output: out }));
    expect((await probe(out)).duration).toBeCloseTo(3, 1);
    expect((await measureAudio(out, { startSec: 1.1, durationSec: 0.4 })).rmsDb).toBeGreaterThan(-35);
    expect((await measureAudio(out, { startSec: 1.7, durationSec: 0.25 })).peakDb).toBeLessThan(-60);
    expect((await measureAudio(out, { startSec: 0.1, durationSec: 0.7 })).peakDb).toBeLessThan(-60);
    expect((await measureAudio(out, { startSec: 2.2, durationSec: 0.7 })).peakDb).toBeLessThan(-60);
  });

  it("joins a lip-synced clip of another size and rate into a silent video's frame, holding its last frame when it runs short", async () => {
    const video = make("silent.mp4", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "2", "-pix_fmt", "yuv420p");
    const clip = join(dir, "clip.mp4");
    await runFfmpegArgs(segmentVideoArgs({ videoPath: video, start: 0.5, seconds: 1, output: clip }));
    const short = make("short.mp4", "-f", "lavfi", "-i", "color=c=red:size=320x240:rate=30", "-t", "0.8", "-pix_fmt", "yuv420p");
    const tone = make("t.wav", "-f", "lavfi", "-i", "sine=frequency=880:duration=1");
    const out = join(dir, "joined.mp4");
    const parts = partsOf([{ index: 0, start: 0.5, end: 1.5, audioStart: 0, audioSeconds: 1 }], 2, () => ({ audioPath: tone, lipsyncedPath: short }));
    await runFfmpegArgs(assembleArgs({ videoPath: video, hasAudio: false, parts, format: { width: 160, height: 120, fps: 25 }, output: out, videoGraph: (i, o) => `${i}hflip${o}` }));
    const info = await probe(out);
    expect(info.duration).toBeCloseTo(2, 1);
    expect(info.streams.find((s) => s.type === "video")).toMatchObject({ width: 160, height: 120, fps: 25 });
    expect((await measureAudio(out, { startSec: 0.6, durationSec: 0.8 })).rmsDb).toBeGreaterThan(-35);
    expect((await measureAudio(out, { startSec: 1.6, durationSec: 0.35 })).peakDb).toBeLessThan(-60);
  });
});
