import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VideoComposeInput, jobLimits } from "@cutroom/contracts";
import { isJobFailure } from "@cutroom/worker-runtime";
import { measureAudio, probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { audioMixGraph, clipAudioGraph, clipVideoGraph, compose, composeFfmpegArgs, overlayGraph, type ComposePlan, type PlannedClip } from "./compose.ts";

const id = () => crypto.randomUUID();
const options = (o: Record<string, unknown>) => VideoComposeInput.parse({ clips: [{ file_id: id() }], ...o });
const clip = (seconds: number, extra: Partial<PlannedClip> = {}): PlannedClip => ({ path: "/in.mp4", still: false, hasAudio: true, start: 0, seconds, zoom: false, ...extra });
const plan = (o: Record<string, unknown>, clips: PlannedClip[]): ComposePlan => ({
  options: options({ clips: clips.map(() => ({ file_id: id() })), ...o }),
  clips,
  imageOverlays: [],
  audio: [],
  textFiles: [],
  frame: { width: 160, height: 120 },
  durationSec: 0,
});

describe("video.compose filter graphs", () => {
  it("scales and pads every clip into the frame, then concatenates them on cuts", () => {
    const g = clipVideoGraph(plan({ transition: "cut", fps: 25 }, [clip(2), clip(1.5)]));
    expect(g.filters[0]).toContain("scale=160:120:force_original_aspect_ratio=decrease,pad=160:120:(ow-iw)/2:(oh-ih)/2");
    expect(g.filters[1]).toContain("trim=duration=1.5");
    expect(g.filters.at(-1)).toBe("[v0][v1]concat=n=2:v=1:a=0[vj]");
    expect(g.out).toBe("vj");
  });

  it("chains crossfades at the running length less the fade", () => {
    const p = plan({ transition: "crossfade", transition_duration: 0.5 }, [clip(2), clip(3), clip(1)]);
    const v = clipVideoGraph(p);
    expect(v.filters.slice(-2)).toEqual(["[v0][v1]xfade=transition=fade:duration=0.5:offset=1.5[vx1]", "[vx1][v2]xfade=transition=fade:duration=0.5:offset=4[vx2]"]);
    const a = clipAudioGraph(p);
    expect(a.filters.slice(-2)).toEqual(["[a0][a1]acrossfade=d=0.5[ax1]", "[ax1][a2]acrossfade=d=0.5[ax2]"]);
  });

  it("gives a clip without sound silence of its length, and zooms a still when asked", () => {
    const p = plan({}, [clip(2, { hasAudio: false, still: true, zoom: true })]);
    expect(clipAudioGraph(p).filters[0]).toBe("anullsrc=channel_layout=stereo:sample_rate=48000,atrim=duration=2,asetpts=PTS-STARTPTS[a0]");
    expect(clipVideoGraph(p).filters[0]).toMatch(/zoompan=z='1\+0\.15\*on\/60'.*d=60:s=160x120/);
  });

  it("shows overlays only in their time window, text from its file in DejaVu Sans", () => {
    const p = { ...plan({ image_overlays: [{ file_id: id(), start_time: 1, duration: 0.5, x: 10, y: 20, width: 40 }], text_overlays: [{ text: "Hi", start_time: 0, duration: 2, position: "top", box: true }] }, [clip(3)]), textFiles: ["/tmp/t0.txt"] };
    const g = overlayGraph(p, "v0");
    expect(g.filters[0]).toBe("[1:v]scale=40:-2,format=rgba[io0]");
    expect(g.filters[1]).toBe("[v0][io0]overlay=x=10:y=20:eof_action=repeat:enable='between(t,1,1.5)'[vo0]");
    expect(g.filters[2]).toContain("fontfile='/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf':textfile='/tmp/t0.txt':expansion=none");
    expect(g.filters[2]).toContain(":box=1:");
    expect(g.filters[2]).toContain("y=6:enable='between(t,0,2)'");
  });

  it("ducks the music under the voice with a sidechain compressor", () => {
    const p = {
      ...plan({ duck_music: true, audio: [{ file_id: id(), role: "music", volume: 0.5 }, { file_id: id(), role: "voice", start: 1.25 }] }, [clip(3)]),
      durationSec: 3,
    };
    const g = audioMixGraph(p, "a0", "loudnorm=X");
    expect(g.filters[0]).toBe("[1:a]aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,volume=0.5[m0]");
    expect(g.filters[1]).toContain("adelay=1250:all=1[m1]");
    expect(g.filters).toContain("[m1]asplit=2[voicemix][voicekey]");
    expect(g.filters.some((f) => f.startsWith("[m0][voicekey]sidechaincompress="))).toBe(true);
    expect(g.filters.at(-1)).toBe("[a0][voicemix][ducked]amix=inputs=3:duration=first:normalize=0,apad,atrim=duration=3,loudnorm=X,aresample=48000,aformat=channel_layouts=stereo[aout]");
  });

  it("writes an H.264/AAC mp4 as long as the composition", () => {
    const args = composeFfmpegArgs({ ...plan({}, [clip(2)]), durationSec: 2 }, "/out.mp4");
    expect(args.join(" ")).toContain("-c:v libx264");
    expect(args.join(" ")).toContain("-c:a aac");
    expect(args.slice(-1)).toEqual(["/out.mp4"]);
  });
});

describe("video.compose with ffmpeg", () => {
  let dir: string;
  let withSound: string;
  let silent: string;
  let still: string;
  let music: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cutroom-compose-"));
    [withSound, silent, still, music] = ["a.mp4", "b.mp4", "c.png", "m.wav"].map((f) => join(dir, f)) as [string, string, string, string];
    await runFfmpeg((cmd) =>
      cmd
        .input("testsrc2=size=160x120:rate=25:duration=2")
        .inputFormat("lavfi")
        .input("sine=frequency=440:sample_rate=48000:duration=2")
        .inputFormat("lavfi")
        .outputOptions(["-pix_fmt", "yuv420p", "-shortest"])
        .output(withSound),
    );
    await runFfmpeg((cmd) => cmd.input("color=c=blue:size=200x100:rate=30:duration=1.5").inputFormat("lavfi").outputOptions(["-pix_fmt", "yuv420p"]).output(silent));
    await runFfmpeg((cmd) => cmd.input("color=c=red:size=90x120").inputFormat("lavfi").outputOptions(["-frames:v", "1"]).output(still));
    await runFfmpeg((cmd) => cmd.input("sine=frequency=220:sample_rate=44100:duration=3").inputFormat("lavfi").output(music));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("crossfades a video, a silent video of another size and a zooming still into one mp4 at the asked loudness", async () => {
    const input = VideoComposeInput.parse({
      clips: [{ file_id: id() }, { file_id: id() }, { file_id: id(), duration: 1, zoom: true }],
      transition: "crossfade",
      transition_duration: 0.25,
      text_overlays: [{ text: "50% off: 'now'", start_time: 0.5, duration: 1, box: true }],
      audio: [{ file_id: id(), volume: 0.5 }],
      width: 160,
      height: 120,
      fps: 25,
      loudness: -18,
    });
    const outputPath = join(dir, "out.mp4");
    const result = await compose({ options: input, clipPaths: [withSound, silent, still], imageOverlayPaths: [], audioPaths: [music], outputPath, workDir: dir, limits: jobLimits("free") });

    const expected = 2 + 1.5 + 1 - 2 * 0.25;
    const info = await probe(outputPath);
    expect(info.duration).toBeGreaterThan(expected - 0.1);
    expect(info.duration).toBeLessThan(expected + 0.1);
    expect(info.streams.find((s) => s.type === "video")).toMatchObject({ width: 160, height: 120, fps: 25 });
    expect(info.streams.map((s) => s.codec).sort()).toEqual(["aac", "h264"]);
    const loudness = (await measureAudio(outputPath)).loudnessLufs;
    expect(Math.abs(loudness - -18)).toBeLessThan(1);
    expect(result.loudness_lufs).toBeCloseTo(loudness, 0);
  }, 30_000);

  it("ducks the music while the voice speaks, only when asked", async () => {
    const voice = join(dir, "voice.wav");
    await runFfmpeg((cmd) => cmd.input("sine=frequency=1000:sample_rate=48000:duration=1").inputFormat("lavfi").output(voice));
    const render = async (duck: boolean) => {
      const input = VideoComposeInput.parse({
        clips: [{ file_id: id(), duration: 3 }],
        audio: [{ file_id: id(), role: "music" }, { file_id: id(), role: "voice", start: 1.5 }],
        duck_music: duck,
        fps: 10,
      });
      const outputPath = join(dir, `duck-${duck}.mp4`);
      await compose({ options: input, clipPaths: [still], imageOverlayPaths: [], audioPaths: [music, voice], outputPath, workDir: dir, limits: jobLimits("free") });
      const [alone, over] = await Promise.all([measureAudio(outputPath, { startSec: 0.3, durationSec: 1 }), measureAudio(outputPath, { startSec: 1.7, durationSec: 0.6 })]);
      // How much louder the mix gets when the voice comes in: less when the music steps back.
      return over.rmsDb - alone.rmsDb;
    };
    const [plain, ducked] = [await render(false), await render(true)];
    expect(plain - ducked).toBeGreaterThan(1.5);
  }, 30_000);

  it("refuses a crossfade longer than a clip", async () => {
    const input = VideoComposeInput.parse({ clips: [{ file_id: id() }, { file_id: id(), duration: 0.2 }], transition: "crossfade", transition_duration: 0.5 });
    const err = await compose({ options: input, clipPaths: [withSound, still], imageOverlayPaths: [], audioPaths: [], outputPath: join(dir, "x.mp4"), workDir: dir, limits: jobLimits("free") }).catch((e) => e);
    expect(isJobFailure(err) && err.code).toBe("INVALID_INPUT");
  });
});
