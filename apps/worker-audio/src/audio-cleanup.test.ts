import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AudioCleanupInput, jobLimits, type JobLimits } from "@cutroom/contracts";
import { isJobFailure } from "@cutroom/worker-runtime";
import { measureAudio, probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanupAudio, loudnessTarget } from "./audio-cleanup.ts";

let dir: string;
let noisy: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-cleanup-"));
  noisy = join(dir, "noisy.wav");
  // 8 s: a 440 Hz tone on for one second, off for the next, over steady white noise.
  await runFfmpeg((cmd) =>
    cmd
      .input("sine=frequency=440:sample_rate=48000:duration=8")
      .inputFormat("lavfi")
      .input("anoisesrc=color=white:amplitude=0.05:sample_rate=48000:duration=8:seed=7")
      .inputFormat("lavfi")
      .complexFilter(["[0]volume='if(lt(mod(t,2),1),1,0)':eval=frame[tone]", "[tone][1]amix=inputs=2:normalize=0"])
      .output(noisy),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function clean(o: Record<string, unknown> = {}, inputPath = noisy, limits: JobLimits = jobLimits("free")) {
  const options = AudioCleanupInput.parse({ file_id: crypto.randomUUID(), ...o });
  const outputPath = join(dir, `clean-${++n}.${options.format}`);
  const progress: number[] = [];
  const result = await cleanupAudio({ inputPath, outputPath, options, limits, onProgress: (p) => progress.push(p) });
  return { outputPath, result, progress };
}

/** How far the tone stands above the noise: the tone second 2–3 s against the noise-only second 3–4 s. */
async function toneOverNoiseDb(path: string) {
  const tone = await measureAudio(path, { startSec: 2.1, durationSec: 0.8 });
  const noise = await measureAudio(path, { startSec: 3.1, durationSec: 0.8 });
  return tone.rmsDb - noise.rmsDb;
}

describe("audio.cleanup", () => {
  it("lowers the noise well below the tone and lands near -16 LUFS", async () => {
    const { outputPath, result, progress } = await clean();

    const before = await toneOverNoiseDb(noisy);
    const after = await toneOverNoiseDb(outputPath);
    expect(after).toBeGreaterThan(before + 5);
    expect(result.loudness_lufs).toBeGreaterThan(loudnessTarget.I - 1);
    expect(result.loudness_lufs).toBeLessThan(loudnessTarget.I + 1);
    expect((await measureAudio(outputPath)).peakDb).toBeLessThanOrEqual(loudnessTarget.TP + 0.5);
    // Normalising raised the whole file, so the floor is compared with the programme level.
    const floorBelowLoudness = (lufs: number | null, floor: number | null) => lufs! - floor!;
    expect(floorBelowLoudness(result.loudness_lufs, result.noise_floor_db)).toBeGreaterThan(
      floorBelowLoudness(result.input_loudness_lufs, result.input_noise_floor_db) + 6,
    );
    expect((await probe(outputPath)).duration).toBeCloseTo(8, 0);
    expect(progress.at(-1)).toBe(100);
  });

  it("removes more noise with Heavy Denoise than with Light Denoise", async () => {
    const light = await toneOverNoiseDb((await clean({ preset: "Light Denoise" })).outputPath);
    const heavy = await toneOverNoiseDb((await clean({ preset: "Heavy Denoise" })).outputPath);

    expect(heavy).toBeGreaterThan(light + 3);
  });

  it("removes more noise the higher the aggression", async () => {
    const gentle = await toneOverNoiseDb((await clean({ preset: "Dialogue Enhance", aggression: 10 })).outputPath);
    const strong = await toneOverNoiseDb((await clean({ preset: "Dialogue Enhance", aggression: 90 })).outputPath);

    expect(strong).toBeGreaterThan(gentle + 3);
  });

  it("writes mp3 and m4a when asked", async () => {
    for (const [format, codec] of [
      ["mp3", "mp3"],
      ["m4a", "aac"],
    ] as const) {
      const { outputPath, result } = await clean({ format });
      const info = await probe(outputPath);
      expect(info.streams.map((s) => s.codec)).toEqual([codec]);
      expect(info.duration).toBeCloseTo(8, 0);
      expect(result.loudness_lufs).toBeGreaterThan(loudnessTarget.I - 1.5);
    }
  });

  it("refuses audio longer than the job's limit with LIMIT_EXCEEDED before running ffmpeg", async () => {
    const outputPath = join(dir, `refused-${++n}.wav`);
    const progress: number[] = [];
    const options = AudioCleanupInput.parse({ file_id: crypto.randomUUID() });
    const err = await cleanupAudio({ inputPath: noisy, outputPath, options, limits: { ...jobLimits("free"), max_media_seconds: 5 }, onProgress: (p) => progress.push(p) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "JobFailure", code: "LIMIT_EXCEEDED", retryable: false, message: "the input lasts 8 s; at most 5 s may be processed on the free tier" });
    // No ffmpeg pass ran: none made the output or reported progress.
    await expect(access(outputPath)).rejects.toThrow();
    expect(progress).toEqual([]);
  });

  it("fails with INVALID_MEDIA for a video without sound and for a file that is not media", async () => {
    const silentVideo = join(dir, "silent.mp4");
    await runFfmpeg((cmd) => cmd.input("testsrc2=size=160x120:duration=1").inputFormat("lavfi").videoCodec("libx264").output(silentVideo));
    const junk = join(dir, "upload.wav");
    await writeFile(junk, Buffer.alloc(4096, 3));

    for (const inputPath of [silentVideo, junk]) {
      const err = await clean({}, inputPath).catch((e: unknown) => e);
      expect(isJobFailure(err) && err.code, inputPath).toBe("INVALID_MEDIA");
    }
  });
});
