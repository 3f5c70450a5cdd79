import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AudioMixInput, jobLimits } from "@cutroom/contracts";
import { measureAudio, probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mixAudio, mixFfmpegArgs, mixGraph, planMix, type MixPlan } from "./audio-mix.ts";

const id = () => crypto.randomUUID();

describe("audio.mix filter graph", () => {
  const plan: MixPlan = {
    options: AudioMixInput.parse({ tracks: [{ file_id: id() }, { file_id: id(), start: 1.5, volume: 0.5 }], format: "mp3" }),
    tracks: [
      { path: "/a.wav", start: 0, volume: 1, seconds: 2 },
      { path: "/b.wav", start: 1.5, volume: 0.5, seconds: 2 },
    ],
    durationSec: 3.5,
  };

  it("delays each track to its start at its volume and sums them as they are", () => {
    expect(mixGraph(plan, "loudnorm=X").split(";")).toEqual([
      "[0:a]aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,volume=1[t0]",
      "[1:a]aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,volume=0.5,adelay=1500:all=1[t1]",
      "[t0][t1]amix=inputs=2:duration=longest:normalize=0,loudnorm=X,aresample=48000,aformat=channel_layouts=stereo[mix]",
    ]);
  });

  it("encodes in the asked format", () => {
    expect(mixFfmpegArgs(plan, "/out.mp3").slice(-7)).toEqual(["-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3", "/out.mp3"]);
  });
});

describe("audio.mix with ffmpeg", () => {
  let dir: string;
  let quiet: string;
  let loud: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cutroom-mix-"));
    quiet = join(dir, "quiet.wav");
    loud = join(dir, "loud.mp3");
    await runFfmpeg((cmd) => cmd.input("sine=frequency=300:sample_rate=44100:duration=2").inputFormat("lavfi").audioFilters(["volume=0.05"]).output(quiet));
    await runFfmpeg((cmd) => cmd.input("sine=frequency=800:sample_rate=48000:duration=2").inputFormat("lavfi").output(loud));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("places each track by the length storage measured of it, reading no file, and probes one whose facts say no sound", async () => {
    const options = AudioMixInput.parse({ tracks: [{ file_id: id() }, { file_id: id(), start: 2.5, volume: 0.7 }], format: "m4a" });
    const [gone1, gone2] = [join(dir, "gone-1.wav"), join(dir, "gone-2.mp3")];
    const heard = { width: null, height: null, duration_seconds: 3, frame_rate: null, video_codec: null, audio_codec: "pcm_s16le", has_audio: true, has_alpha: null };
    const plan = await planMix({ options, inputs: [{ path: gone1, media: heard }, { path: gone2, media: { ...heard, duration_seconds: 1.25 } }], limits: jobLimits("free") });
    expect(plan.tracks.map((t) => t.seconds)).toEqual([3, 1.25]);
    expect(plan.durationSec).toBe(3.75);
    // Facts that give no sound (or none at all) send the track to ffprobe, which says what is wrong with it.
    await expect(planMix({ options, inputs: [{ path: gone1, media: heard }, { path: gone2, media: { ...heard, has_audio: false } }], limits: jobLimits("free") })).rejects.toMatchObject({ code: "INVALID_MEDIA", message: expect.stringContaining("tracks[1]") });
    await expect(planMix({ options, inputs: [{ path: gone1, media: heard }, { path: loud }], limits: jobLimits("free") })).resolves.toMatchObject({ tracks: [{ seconds: 3 }, { seconds: expect.closeTo(2, 1) }] });
  });

  it("lasts until the latest end on the timeline, at -16 LUFS", { timeout: 30_000 }, async () => {
    const outputPath = join(dir, "mix.m4a");
    const options = AudioMixInput.parse({ tracks: [{ file_id: id() }, { file_id: id(), start: 2.5, volume: 0.7 }], format: "m4a" });
    const result = await mixAudio({ options, inputs: [{ path: quiet }, { path: loud }], outputPath, limits: jobLimits("free") });

    const info = await probe(outputPath);
    expect(info.duration).toBeGreaterThan(4.45);
    expect(info.duration).toBeLessThan(4.6);
    expect(info.streams[0]).toMatchObject({ type: "audio", codec: "aac", sample_rate: 48000, channels: 2 });
    expect(Math.abs((await measureAudio(outputPath)).loudnessLufs - -16)).toBeLessThan(1);
    expect(result.loudness_lufs).not.toBeNull();
  });
});
