import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FfmpegError, isAbortError, loudnormFilter, measureAudio, measureFrame, parseLoudnorm, probe, runFfmpeg, runFfmpegArgs } from "./ffmpeg.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-ffmpeg-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const runningFfmpegArgs = () =>
  execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.startsWith("ffmpeg"));

describe("runFfmpeg", () => {
  it("reports progress that climbs to 100 and never goes backwards", async () => {
    const seen: number[] = [];
    // -re paces the 3 s clip in real time, so ffmpeg reports several times on the way.
    await runFfmpeg(
      (cmd) =>
        cmd
          .input("testsrc2=size=320x240:rate=25:duration=3")
          .inputFormat("lavfi")
          .inputOptions(["-re"])
          .videoCodec("libx264")
          .outputOptions(["-preset", "ultrafast"])
          .output(join(dir, "progress.mp4")),
      { durationSec: 3, onProgress: (p) => seen.push(p) },
    );

    expect(seen.at(-1)).toBe(100);
    expect(seen.filter((p) => p > 0 && p < 100).length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(Math.max(...seen)).toBeLessThanOrEqual(100);
  });

  it("kills ffmpeg within 2 s of an abort and rejects with an AbortError", async () => {
    const output = join(dir, `aborted-${Date.now()}.mp4`);
    const controller = new AbortController();
    let abortedAt = 0;
    const run = runFfmpeg(
      (cmd) =>
        cmd
          .input("testsrc2=size=640x480:rate=25:duration=600")
          .inputFormat("lavfi")
          .inputOptions(["-re"])
          .videoCodec("libx264")
          .output(output),
      {
        durationSec: 600,
        signal: controller.signal,
        onProgress: () => {
          if (!abortedAt) {
            abortedAt = Date.now();
            controller.abort();
          }
        },
      },
    );

    const err = await run.catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(Date.now() - abortedAt).toBeLessThan(2000);
    expect(runningFfmpegArgs().filter((l) => l.includes(output))).toEqual([]);
  });

  it("does not start ffmpeg at all when the signal has already fired", async () => {
    const err = await runFfmpeg((cmd) => cmd.input("anullsrc").inputFormat("lavfi").output(join(dir, "never.wav")), {
      signal: AbortSignal.abort(),
    }).catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
  });

  it("rejects with the tail of ffmpeg's own error output", async () => {
    const err = await runFfmpeg((cmd) =>
      cmd.input("sine=duration=1").inputFormat("lavfi").audioFilters("nosuchfilter=1").output(join(dir, "bad.wav")),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FfmpegError);
    expect((err as Error).message).toMatch(/nosuchfilter/i);
  });
});

describe("runFfmpegArgs", () => {
  it("runs an argument list with progress up to 100, and rejects with ffmpeg's error output", async () => {
    const seen: number[] = [];
    const args = ["-y", "-re", "-f", "lavfi", "-i", "sine=duration=2", join(dir, "args.wav")];
    await runFfmpegArgs(args, { durationSec: 2, onProgress: (p) => seen.push(p) });
    expect(seen.at(-1)).toBe(100);
    expect(seen.filter((p) => p > 0 && p < 100).length).toBeGreaterThanOrEqual(1);

    const err = await runFfmpegArgs(["-f", "lavfi", "-i", "sine=duration=1", "-af", "nosuchfilter=1", join(dir, "bad-args.wav")]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FfmpegError);
    expect((err as Error).message).toMatch(/nosuchfilter/i);
  });

  it("kills ffmpeg on abort and rejects with an AbortError", async () => {
    const output = join(dir, `aborted-args-${Date.now()}.wav`);
    const controller = new AbortController();
    const run = runFfmpegArgs(["-re", "-f", "lavfi", "-i", "sine=duration=600", output], { durationSec: 600, signal: controller.signal, onProgress: () => controller.abort() });
    expect(isAbortError(await run.catch((e: unknown) => e))).toBe(true);
    expect(runningFfmpegArgs().filter((l) => l.includes(output))).toEqual([]);
  });

  it("turns loudnorm's first pass into one linear gain, and leaves silence alone", async () => {
    const { stderr } = await runFfmpegArgs(["-f", "lavfi", "-i", "sine=duration=3", "-af", "loudnorm=I=-16:print_format=json", "-f", "null", "-"]);
    const measured = parseLoudnorm(stderr);
    expect(measured.input_i).toBeLessThan(-10);
    expect(loudnormFilter(-16, measured)).toMatch(/^loudnorm=I=-16:.*measured_I=-?[\d.]+.*:linear=true$/);
    expect(loudnormFilter(-16, { ...measured, input_i: -Infinity })).toBeUndefined();
  });
});

describe("probe", () => {
  it("reports duration, codecs and geometry of a generated clip", async () => {
    const clip = join(dir, "probe.mp4");
    await runFfmpeg((cmd) =>
      cmd
        .input("testsrc2=size=320x240:rate=25:duration=2")
        .inputFormat("lavfi")
        .input("sine=frequency=440:sample_rate=44100:duration=2")
        .inputFormat("lavfi")
        .videoCodec("libx264")
        .audioCodec("aac")
        .outputOptions(["-pix_fmt", "yuv420p", "-shortest"])
        .output(clip),
    );

    const info = await probe(clip);
    expect(info.duration).toBeCloseTo(2, 0);
    expect(info.format).toContain("mp4");
    expect(info.streams.find((s) => s.type === "video")).toMatchObject({ codec: "h264", width: 320, height: 240, fps: 25 });
    expect(info.streams.find((s) => s.type === "audio")).toMatchObject({ codec: "aac", sample_rate: 44100, channels: 1 });
  });

  it("says an unknown frame rate (null) of a clip whose one frame lasts a day, rather than 0", async () => {
    const slow = join(dir, "slow.mp4");
    await runFfmpegArgs(["-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=16x16:r=1/100000", "-frames:v", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", slow]);
    expect((await probe(slow)).streams.find((s) => s.type === "video")).toMatchObject({ width: 16, height: 16, fps: null });
  });

  it("rejects a file that is not media", async () => {
    const junk = join(dir, "upload.bin");
    await writeFile(junk, Buffer.from("PK\u0003\u0004 certainly not a video ".repeat(50)));
    await expect(probe(junk)).rejects.toBeInstanceOf(FfmpegError);
  });

  it("times a recording whose container does not state its duration (a browser's WebM) by its packets", async () => {
    // Written to a pipe, as MediaRecorder does: the WebM has no duration and no cues.
    const webm = execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "libopus", "-f", "webm", "pipe:1"]);
    const file = join(dir, "recording.webm");
    await writeFile(file, webm);
    expect(execFileSync("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file], { encoding: "utf8" }).trim()).toBe("N/A");
    expect((await probe(file)).duration).toBeCloseTo(3, 1);
  });

  it("gives up on a source that does not answer within its timeout, and leaves no ffprobe behind", async () => {
    const server = createServer(() => {}); // accepts, never answers
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/stalled.mp4`;
    try {
      const started = Date.now();
      await expect(probe(url, { timeoutMs: 500 })).rejects.toThrow(/time limit/);
      expect(Date.now() - started).toBeLessThan(3000);
      const probes = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).split("\n").filter((l) => l.startsWith("ffprobe") && l.includes(url));
      expect(probes).toEqual([]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe("measurements", () => {
  it("measures the level and loudness of a known tone", async () => {
    const tone = join(dir, "tone.wav");
    // lavfi's sine has amplitude 1/8: peak -18.06 dBFS, RMS -21.07 dBFS.
    await runFfmpeg((cmd) => cmd.input("sine=frequency=1000:sample_rate=48000:duration=4").inputFormat("lavfi").output(tone));

    const stats = await measureAudio(tone);
    expect(stats.peakDb).toBeCloseTo(-18.06, 1);
    expect(stats.rmsDb).toBeCloseTo(-21.07, 1);
    expect(stats.loudnessLufs).toBeGreaterThan(-23);
    expect(stats.loudnessLufs).toBeLessThan(-19);

    const quiet = await measureAudio(tone, { startSec: 1, durationSec: 1 });
    expect(quiet.rmsDb).toBeCloseTo(-21.07, 1);
  });

  it("sees a grey frame as unsaturated and a test pattern as colourful", async () => {
    const grey = join(dir, "grey.mp4");
    const pattern = join(dir, "pattern.mp4");
    for (const [src, out] of [
      ["color=c=gray:size=160x120:duration=1", grey],
      ["testsrc2=size=160x120:duration=1", pattern],
    ] as const) {
      await runFfmpeg((cmd) => cmd.input(src).inputFormat("lavfi").videoCodec("libx264").outputOptions(["-pix_fmt", "yuv420p"]).output(out));
    }

    const g = await measureFrame(grey, 0.5);
    const p = await measureFrame(pattern, 0.5);
    expect(g.satavg).toBeLessThan(2);
    expect(g.yavg).toBeGreaterThan(100);
    expect(p.satavg).toBeGreaterThan(g.satavg + 10);
  });
});
