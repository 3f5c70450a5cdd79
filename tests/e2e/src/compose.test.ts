import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { measureAudio, probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useStack } from "./stack.ts";
import { jobHelpers } from "./jobs.ts";

const ctx = useStack();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "e2e-compose-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Makes a file with ffmpeg from lavfi sources and returns its bytes. */
async function make(name: string, build: Parameters<typeof runFfmpeg>[0]): Promise<Uint8Array> {
  const path = join(dir, name);
  await runFfmpeg((cmd) => {
    build(cmd);
    cmd.output(path);
  });
  return new Uint8Array(await readFile(path));
}

const { runToSuccess: run, download } = jobHelpers(ctx);

async function downloadTo(token: string, fileId: string, name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, await download(token, fileId));
  return path;
}

interface Frame {
  data: Buffer;
  width: number;
}

/** The RGB frame shown at `atSec`, extracted with ffmpeg and decoded with sharp. */
async function frameAt(video: string, atSec: number): Promise<Frame> {
  const png = join(dir, `frame-${atSec}-${Math.random()}.png`);
  await runFfmpeg((cmd) => cmd.input(video).inputOptions(["-ss", String(atSec)]).outputOptions(["-frames:v", "1"]).output(png));
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width };
}

type Box = { x0: number; y0: number; x1: number; y1: number };
const inBox = (x: number, y: number, b: Box) => x >= b.x0 && x < b.x1 && y >= b.y0 && y < b.y1;

/** Mean absolute difference per channel between two frames, over the pixels `pick` keeps. */
function meanDiff(a: Frame, b: Frame, pick: (x: number, y: number) => boolean): number {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < a.data.length; i += 3) {
    const p = i / 3;
    if (!pick(p % a.width, Math.floor(p / a.width))) continue;
    sum += Math.abs(a.data[i]! - b.data[i]!) + Math.abs(a.data[i + 1]! - b.data[i + 1]!) + Math.abs(a.data[i + 2]! - b.data[i + 2]!);
    count += 3;
  }
  return sum / count;
}

/** Mean absolute difference of a frame's pixels from one colour, over the pixels `pick` keeps. */
function diffFrom(a: Frame, rgb: [number, number, number], pick: (x: number, y: number) => boolean): number {
  const flat = { data: Buffer.alloc(a.data.length), width: a.width };
  for (let i = 0; i < flat.data.length; i += 3) flat.data.set(rgb, i);
  return meanDiff(a, flat, pick);
}

describe("video.compose and audio.mix, end to end", () => {
  it("composes clips with crossfades, timed image and text overlays and ducked music, at the asked length and loudness", async () => {
    const u = await ctx.api.signUp();
    // A flat grey clip with a tone, a navy clip of another shape without sound, a blue still.
    const grey = await make("grey.mp4", (cmd) =>
      cmd
        .input("color=c=0x808080:size=160x120:rate=25:duration=2")
        .inputFormat("lavfi")
        .input("sine=frequency=440:sample_rate=48000:duration=2")
        .inputFormat("lavfi")
        .outputOptions(["-pix_fmt", "yuv420p", "-shortest"]),
    );
    const navy = await make("navy.mp4", (cmd) => cmd.input("color=c=navy:size=200x100:rate=30:duration=1.5").inputFormat("lavfi").outputOptions(["-pix_fmt", "yuv420p"]));
    const still = new Uint8Array(await sharp({ create: { width: 80, height: 60, channels: 3, background: "#0000ff" } }).png().toBuffer());
    const logo = new Uint8Array(await sharp({ create: { width: 20, height: 15, channels: 3, background: "#ff0000" } }).png().toBuffer());
    const music = await make("music.wav", (cmd) => cmd.input("sine=frequency=220:sample_rate=44100:duration=4").inputFormat("lavfi"));
    const voice = await make("voice.wav", (cmd) => cmd.input("sine=frequency=900:sample_rate=48000:duration=1.5").inputFormat("lavfi"));
    const up = async (name: string, type: string, bytes: Uint8Array) => (await ctx.api.upload(u.token, name, type, bytes)).body.file.id as string;
    const ids = {
      grey: await up("grey.mp4", "video/mp4", grey),
      navy: await up("navy.mp4", "video/mp4", navy),
      still: await up("still.png", "image/png", still),
      logo: await up("logo.png", "image/png", logo),
      music: await up("music.wav", "audio/wav", music),
      voice: await up("voice.wav", "audio/wav", voice),
    };

    const input = {
      clips: [{ file_id: ids.grey }, { file_id: ids.navy }, { file_id: ids.still, duration: 1, zoom: true }],
      transition: "crossfade",
      transition_duration: 0.25,
      // The logo, scaled to 40×30, at (20, 10) from 0.5 s to 1 s; text at (90, 70) for the first 1.5 s.
      image_overlays: [{ file_id: ids.logo, start_time: 0.5, duration: 0.5, x: 20, y: 10, width: 40 }],
      text_overlays: [{ text: "HI", start_time: 0, duration: 1.5, x: 90, y: 70, font_size: 24, color: "white" }],
      audio: [
        { file_id: ids.music, role: "music", volume: 0.5 },
        { file_id: ids.voice, role: "voice", start: 1 },
      ],
      duck_music: true,
      width: 160,
      height: 120,
      fps: 25,
      loudness: -20,
    };
    const estimate = await ctx.api.post("/jobs/estimate", { type: "video.compose", input }, u.token);
    expect(estimate.body).toMatchObject({ credits: 20, work: { output_seconds: 4 } });

    const final = await run(u.token, "video.compose", input);
    expect(final.result.files[0]).toMatchObject({ content_type: "video/mp4" });
    const out = await downloadTo(u.token, final.result.files[0].file_id, "composed.mp4");

    // 2 + 1.5 + 1 s less two 0.25 s crossfades, within two frames.
    const info = await probe(out);
    expect(Math.abs(info.duration! - 4)).toBeLessThan(0.08);
    const video = info.streams.find((s) => s.type === "video")!;
    expect(video).toMatchObject({ codec: "h264", width: 160, height: 120, fps: 25 });
    // The result says what the file is (storage's measurement of it, ADR 056).
    expect(final.result).toMatchObject({ duration: info.duration, width: 160, height: 120, fps: 25, loudness_lufs: expect.any(Number) });
    expect(info.streams.find((s) => s.type === "audio")?.codec).toBe("aac");
    expect(Math.abs((await measureAudio(out)).loudnessLufs - -20)).toBeLessThan(1.5);

    const logoBox = { x0: 20, y0: 10, x1: 60, y1: 40 };
    const margin = { x0: 17, y0: 7, x1: 63, y1: 43 };
    const inside = (x: number, y: number) => inBox(x, y, { x0: 22, y0: 12, x1: 58, y1: 38 });
    const outside = (x: number, y: number) => !inBox(x, y, margin);
    const [before, during, after] = await Promise.all([frameAt(out, 0.25), frameAt(out, 0.75), frameAt(out, 1.25)]);
    expect(meanDiff(during, before, inside)).toBeGreaterThan(60);
    expect(meanDiff(during, before, outside)).toBeLessThan(2);
    expect(meanDiff(after, before, (x, y) => inBox(x, y, logoBox))).toBeLessThan(2);
    expect(diffFrom(during, [255, 0, 0], inside)).toBeLessThan(30);

    // The text: white strokes in its box on the grey, none elsewhere below the logo.
    const textBox = (x: number, y: number) => inBox(x, y, { x0: 90, y0: 70, x1: 125, y1: 95 });
    const clear = (x: number, y: number) => inBox(x, y, { x0: 0, y0: 60, x1: 80, y1: 120 });
    expect(diffFrom(before, [128, 128, 128], textBox)).toBeGreaterThan(15);
    expect(diffFrom(before, [128, 128, 128], clear)).toBeLessThan(4);
    // After the text's window (the navy clip) the box is flat again.
    const navyFrame = await frameAt(out, 2.5);
    expect(diffFrom(navyFrame, [0, 0, 128], textBox)).toBeLessThan(8);
  });

  it("refuses a crossfade longer than a clip at enqueue", async () => {
    const u = await ctx.api.signUp();
    const still = new Uint8Array(await sharp({ create: { width: 32, height: 32, channels: 3, background: "#00ff00" } }).png().toBuffer());
    const id = (await ctx.api.upload(u.token, "s.png", "image/png", still)).body.file.id;
    const res = await ctx.api.post("/jobs", { type: "video.compose", input: { clips: [{ file_id: id, duration: 2 }, { file_id: id, duration: 0.3 }], transition: "crossfade", transition_duration: 0.5 } }, u.token);
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: "INVALID_INPUT", details: { field: "clips.1", reason: "shorter than the transition" } });
  });

  it("mixes audio files on a timeline: as long as the latest end, at -16 LUFS", async () => {
    const u = await ctx.api.signUp();
    const quiet = await make("quiet.wav", (cmd) => cmd.input("sine=frequency=300:sample_rate=44100:duration=2").inputFormat("lavfi").audioFilters(["volume=0.05"]));
    const loud = await make("loud.mp3", (cmd) => cmd.input("sine=frequency=800:sample_rate=48000:duration=1.5").inputFormat("lavfi"));
    const a = (await ctx.api.upload(u.token, "quiet.wav", "audio/wav", quiet)).body.file.id;
    const b = (await ctx.api.upload(u.token, "loud.mp3", "audio/mpeg", loud)).body.file.id;
    const final = await run(u.token, "audio.mix", { tracks: [{ file_id: a }, { file_id: b, start: 2.5, volume: 0.8 }], format: "wav" });
    expect(final.result.files[0]).toMatchObject({ content_type: "audio/wav" });
    const out = await downloadTo(u.token, final.result.files[0].file_id, "mix.wav");
    const mixed = await probe(out);
    expect(Math.abs(mixed.duration! - 4)).toBeLessThan(0.05);
    expect(final.result).toMatchObject({ duration: mixed.duration, loudness_lufs: expect.any(Number) });
    expect(Math.abs((await measureAudio(out)).loudnessLufs - -16)).toBeLessThan(1);
  });
});
