import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maskFilters, matteSettings, sequenceFrames, writeMatte, zipFiles, type MatteFormat, type MatteSettings } from "./matte.ts";

const size = { width: 160, height: 120 };
const FPS = 10;
let dir: string;
let footage: string;
let mask: string;
let flicker: string;
let n = 0;

/** A white square on black, the size of a SAM 2 binary mask, as an H.264 video (lossy, like the model's). */
async function makeMask(path: string, filter: string) {
  await runFfmpeg((cmd) =>
    cmd
      .input(`color=c=black:s=${size.width}x${size.height}:r=${FPS}:d=2`)
      .inputFormat("lavfi")
      .videoFilters([filter, "format=yuv420p"])
      .outputOptions(["-c:v", "libx264", "-crf", "18"])
      .output(path),
  );
}

/** The alpha plane of frame `index` of a video or PNG, as 8-bit values. */
async function alphaOf(path: string, index = 10): Promise<Uint8Array> {
  const raw = join(dir, `alpha-${++n}.gray`);
  await runFfmpeg((cmd) =>
    cmd
      .input(path)
      .videoFilters([`select=eq(n\\,${index})`, "alphaextract", "format=gray"])
      .outputOptions(["-frames:v", "1", "-f", "rawvideo"])
      .output(raw),
  );
  return new Uint8Array(await readFile(raw));
}

const opaque = (alpha: Uint8Array) => alpha.filter((a) => a > 127).length;
const partial = (alpha: Uint8Array) => alpha.filter((a) => a > 10 && a < 245).length;

async function matte(settings: MatteSettings, format: MatteFormat = "prores_4444", maskPath = mask) {
  const ext = { prores_4444: "mov", vp9: "webm", png_sequence: "" }[format];
  const outputPath = join(dir, `matte-${++n}${ext ? `.${ext}` : ""}`);
  const progress: number[] = [];
  await writeMatte({ sourcePath: footage, maskPath, size, settings, format, outputPath, durationSec: 2, onProgress: (p) => progress.push(p) });
  return { outputPath, progress };
}

const plain: MatteSettings = { erodePx: 0, dilatePx: 0, featherSigma: 0, temporalFrames: 1 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-matte-"));
  footage = join(dir, "footage.mp4");
  await runFfmpeg((cmd) =>
    cmd.input(`testsrc2=size=${size.width}x${size.height}:rate=${FPS}:duration=2`).inputFormat("lavfi").outputOptions(["-c:v", "libx264", "-pix_fmt", "yuv420p"]).output(footage),
  );
  mask = join(dir, "mask.mp4");
  // 40x40 white square in the middle: 1,600 pixels.
  await makeMask(mask, "drawbox=x=60:y=40:w=40:h=40:color=white:t=fill");
  flicker = join(dir, "flicker.mp4");
  // The same square, but gone on frame 10 alone: the kind of one-frame dropout temporal smoothing should ride over.
  await makeMask(flicker, "drawbox=x=60:y=40:w=40:h=40:color=white:t=fill:enable='not(eq(n\\,10))'");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("matteSettings", () => {
  it("leaves the edge alone at tightness 50 and smoothing 0", () => {
    expect(matteSettings(50, 0, { width: 1920, height: 1080 })).toEqual(plain);
  });

  it("erodes above 50 and dilates below, up to 3% of the short side", () => {
    expect(matteSettings(100, 0, { width: 1920, height: 1080 })).toMatchObject({ erodePx: 32, dilatePx: 0 });
    expect(matteSettings(0, 0, { width: 1920, height: 1080 })).toMatchObject({ erodePx: 0, dilatePx: 32 });
    expect(matteSettings(75, 0, { width: 1920, height: 1080 })).toMatchObject({ erodePx: 16 });
  });

  it("feathers and averages more frames as smoothing grows", () => {
    expect(matteSettings(50, 100, { width: 1920, height: 1080 })).toMatchObject({ featherSigma: 10.8, temporalFrames: 5 });
    expect(matteSettings(50, 50, { width: 1920, height: 1080 })).toMatchObject({ featherSigma: 5.4, temporalFrames: 3 });
  });

  it("builds erosion passes, tmix and gblur in that order", () => {
    expect(maskFilters({ erodePx: 2, dilatePx: 0, featherSigma: 1.5, temporalFrames: 3 }, size).slice(3)).toEqual(["erosion", "erosion", "tmix=frames=3", "gblur=sigma=1.5"]);
  });
});

describe("writeMatte", () => {
  it("writes ProRes 4444 with an alpha channel that is the mask", async () => {
    const { outputPath, progress } = await matte(plain);
    const info = await probe(outputPath);
    const video = info.streams.find((s) => s.type === "video")!;
    expect(video).toMatchObject({ codec: "prores", alpha: true, width: 160, height: 120 });
    expect(video.pix_fmt).toMatch(/^yuva444p1[02]le$/);
    expect(info.duration).toBeCloseTo(2, 1);
    expect(progress.at(-1)).toBe(100);
    const alpha = await alphaOf(outputPath);
    expect(Math.abs(opaque(alpha) - 1600)).toBeLessThan(120);
    // Inside the square opaque, far outside transparent.
    expect(alpha[60 * 160 + 80]).toBeGreaterThan(250);
    expect(alpha[5 * 160 + 5]).toBeLessThan(5);
  });

  it("writes VP9 with alpha in WebM", async () => {
    const { outputPath } = await matte(plain, "vp9");
    const info = await probe(outputPath);
    const video = info.streams.find((s) => s.type === "video")!;
    expect(video).toMatchObject({ codec: "vp9", alpha: true });
    expect(execFileSync("ffprobe", ["-v", "error", "-show_entries", "stream_tags=alpha_mode", "-of", "csv=p=0", outputPath]).toString().trim()).toBe("1");
  });

  it("shrinks the matte when tightness erodes it and grows it when it dilates", async () => {
    const tight = opaque(await alphaOf((await matte({ ...plain, erodePx: 5 })).outputPath));
    const loose = opaque(await alphaOf((await matte({ ...plain, dilatePx: 5 })).outputPath));
    // A 40 px square eroded by 5 px is 30 px (900), dilated 50 px (2,500; ffmpeg's 3x3 passes round its corners a little).
    expect(Math.abs(tight - 900)).toBeLessThan(120);
    expect(Math.abs(loose - 2500)).toBeLessThan(250);
  });

  it("feathers the edge: alpha between opaque and clear where it was hard", async () => {
    const hard = partial(await alphaOf((await matte(plain)).outputPath));
    const soft = partial(await alphaOf((await matte({ ...plain, featherSigma: 3 })).outputPath));
    expect(soft).toBeGreaterThan(hard + 300);
  });

  it("rides over a one-frame dropout of the mask with temporal smoothing", async () => {
    const dropped = opaque(await alphaOf((await matte(plain, "prores_4444", flicker)).outputPath, 10));
    expect(dropped).toBeLessThan(50);
    const smoothed = await alphaOf((await matte({ ...plain, temporalFrames: 5 }, "prores_4444", flicker)).outputPath, 10);
    // Four of the five frames averaged have the square: about 80% alpha where it was.
    expect(smoothed[60 * 160 + 80]).toBeGreaterThan(180);
  });

  it("writes one RGBA PNG per frame, and zips them", async () => {
    const { outputPath } = await matte({ ...plain, featherSigma: 1 }, "png_sequence");
    const frames = await sequenceFrames(outputPath);
    expect(frames).toHaveLength(20);
    const info = await probe(frames[0]!);
    expect(info.streams[0]).toMatchObject({ codec: "png", pix_fmt: "rgba", alpha: true, width: 160, height: 120 });
    expect(opaque(await alphaOf(frames[10]!, 0))).toBeGreaterThan(1400);

    const zip = join(dir, "frames.zip");
    await zipFiles(frames, zip, "frames");
    const listing = execFileSync("unzip", ["-Z1", zip]).toString().trim().split("\n");
    expect(listing).toHaveLength(20);
    // In frame order, as a tool that reads a sequence expects.
    expect(listing).toEqual(frames.map((_, i) => `frames/frame-${String(i + 1).padStart(5, "0")}.png`));
  });
});
