import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probe, runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { ocrImage } from "@cutroom/worker-runtime/tesseract";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useStack } from "./stack.ts";
import { jobHelpers } from "./jobs.ts";

const ctx = useStack();
let dir: string;

type Box = { x: number; y: number; width: number; height: number };
const W = 160;
const H = 120;
// Big, high-contrast burnt-in text, shown from 1 s to 2 s of a 3 s clip over a slowly moving gradient.
const TEXT = { from: 1, to: 2 };
const drawtext = `drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:expansion=none:text='SALE 50%':fontsize=24:fontcolor=white:x=14:y=44`;
let clip: Uint8Array;
let clean: Uint8Array;
/** Where drawtext put the glyphs: the bright pixels of the same text drawn on black. */
let drawn: Box;

async function ffmpegBytes(name: string, args: string[]): Promise<Uint8Array> {
  const path = join(dir, name);
  await runFfmpegArgs([...args, "-y", path]);
  return new Uint8Array(await readFile(path));
}

const background = `gradients=s=${W}x${H}:rate=25:duration=3:speed=0.02:c0=0x203a60:c1=0x4a7090:seed=7`;
const encode = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "e2e-erase-"));
  const tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=3"];
  clip = await ffmpegBytes("clip.mp4", ["-v", "error", "-f", "lavfi", "-i", background, ...tone, "-vf", `${drawtext}:enable='between(t,${TEXT.from},${TEXT.to})'`, ...encode]);
  clean = await ffmpegBytes("clean.mp4", ["-v", "error", "-f", "lavfi", "-i", background, ...tone, ...encode]);
  const mask = await ffmpegBytes("mask.png", ["-v", "error", "-f", "lavfi", "-i", `color=c=black:s=${W}x${H}`, "-frames:v", "1", "-vf", drawtext]);
  drawn = await brightBox(mask);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function grey(png: Uint8Array): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

async function brightBox(png: Uint8Array): Promise<Box> {
  const g = await grey(png);
  let [x0, y0, x1, y1] = [g.width, g.height, -1, -1];
  for (let y = 0; y < g.height; y++)
    for (let x = 0; x < g.width; x++)
      if (g.data[y * g.width + x]! > 128) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  return { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
}

let seq = 0;
/** The frame shown at `at` seconds, as a PNG. */
async function frameAt(bytes: Uint8Array, ext: string, at: number): Promise<Uint8Array> {
  const n = ++seq;
  await writeFile(join(dir, `in-${n}.${ext}`), bytes);
  return ffmpegBytes(`frame-${n}.png`, ["-v", "error", "-ss", String(at), "-i", join(dir, `in-${n}.${ext}`), "-frames:v", "1"]);
}

/** Mean Sobel gradient magnitude inside `box`: text is all edges, an erased patch has few. */
async function edgeEnergy(png: Uint8Array, box: Box): Promise<number> {
  const g = await grey(png);
  const p = (x: number, y: number) => g.data[y * g.width + x]!;
  let sum = 0;
  let n = 0;
  for (let y = Math.max(1, box.y); y < Math.min(g.height - 1, box.y + box.height); y++)
    for (let x = Math.max(1, box.x); x < Math.min(g.width - 1, box.x + box.width); x++) {
      const gx = p(x + 1, y - 1) + 2 * p(x + 1, y) + p(x + 1, y + 1) - p(x - 1, y - 1) - 2 * p(x - 1, y) - p(x - 1, y + 1);
      const gy = p(x - 1, y + 1) + 2 * p(x, y + 1) + p(x + 1, y + 1) - p(x - 1, y - 1) - 2 * p(x, y - 1) - p(x + 1, y - 1);
      sum += Math.hypot(gx, gy);
      n++;
    }
  return sum / n;
}

/** Mean absolute difference of two frames inside `box`, 0–255. */
async function meanDiff(a: Uint8Array, b: Uint8Array, box: Box): Promise<number> {
  const [ga, gb] = await Promise.all([grey(a), grey(b)]);
  let sum = 0;
  for (let y = box.y; y < box.y + box.height; y++) for (let x = box.x; x < box.x + box.width; x++) sum += Math.abs(ga.data[y * W + x]! - gb.data[y * W + x]!);
  return sum / (box.width * box.height);
}

/** The words tesseract reads in a frame, enlarged as the detector enlarges small video. */
async function ocrWords(png: Uint8Array): Promise<string[]> {
  const path = join(dir, `ocr-${++seq}.png`);
  await writeFile(path, await sharp(png).resize(W * 3, H * 3, { kernel: "cubic" }).png().toBuffer());
  return (await ocrImage(path)).filter((w) => w.confidence >= 60).map((w) => w.text);
}

function overlapRatio(a: Box, b: Box): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? (w * h) / (b.width * b.height) : 0;
}

const { runToSuccess: run, download } = jobHelpers(ctx);

async function uploadClip(token: string, bytes = clip) {
  const { body } = await ctx.api.upload(token, "sale.mp4", "video/mp4", bytes);
  return body.file.id as string;
}

describe("burnt-in text: detection and erasure, end to end", () => {
  it("finds the drawn text where and when it was drawn", async () => {
    const u = await ctx.api.signUp();
    const final = await run(u.token, "video.detect-text", { file_id: await uploadClip(u.token) });
    expect(final.result.files).toEqual([]);
    expect(final.result.regions).toHaveLength(1);
    const [region] = final.result.regions;
    expect(region.text).toMatch(/^SALE/);
    expect(region.confidence).toBeGreaterThan(60);
    // Most of the drawn glyphs are inside the box found, and the box is not much bigger than them.
    expect(overlapRatio(region.bbox, drawn)).toBeGreaterThan(0.8);
    expect(region.bbox.width * region.bbox.height).toBeLessThan(2 * drawn.width * drawn.height);
    expect(Math.abs(region.start_time - TEXT.from)).toBeLessThanOrEqual(0.5);
    expect(Math.abs(region.end_time - TEXT.to)).toBeLessThanOrEqual(0.5);
    expect(final.credits).toMatchObject({ amount: 5, state: "captured" });
  });

  it("erases the detected text: the region's edges fall to the clean background's and OCR reads nothing", async () => {
    const u = await ctx.api.signUp();
    const final = await run(u.token, "video.erase", { file_id: await uploadClip(u.token) });
    expect(final.result).toMatchObject({ auto_detect: true, method: "delogo", skipped: [] });
    expect(final.result.erased).toEqual([expect.objectContaining({ source: "detected", text: expect.stringMatching(/^SALE/) })]);
    const out = await download(u.token, final.result.files[0].file_id);
    const [before, after, bare] = await Promise.all([frameAt(clip, "mp4", 1.5), frameAt(out, "mp4", 1.5), frameAt(clean, "mp4", 1.5)]);
    expect(await ocrWords(before)).toContain("SALE");
    const [eBefore, eAfter, eBare] = await Promise.all([edgeEnergy(before, drawn), edgeEnergy(after, drawn), edgeEnergy(bare, drawn)]);
    expect(eAfter).toBeLessThan(eBefore * 0.25);
    expect(eAfter).toBeLessThan(eBare + 15);
    expect(await ocrWords(after)).toEqual([]);
    // Outside the text's time nothing was touched.
    expect(await meanDiff(await frameAt(clip, "mp4", 0.2), await frameAt(out, "mp4", 0.2), drawn)).toBeLessThan(3);
  });

  it("keeps a protected region's pixels while erasing around it, with blur", async () => {
    const u = await ctx.api.signUp();
    const erase = { start_time: 0.5, end_time: 2.5, bbox: { x: drawn.x - 4, y: drawn.y - 4, width: drawn.width + 8, height: drawn.height + 8 }, type: "erasure" };
    const keep = { start_time: 0, end_time: 3, bbox: { x: drawn.x - 2, y: drawn.y - 2, width: 30, height: drawn.height + 4 }, type: "protection" };
    const final = await run(u.token, "video.erase", { file_id: await uploadClip(u.token), regions: [erase, keep], method: "blur" });
    expect(final.result.auto_detect).toBe(false);
    expect(final.result.erased).toEqual([expect.objectContaining({ source: "given", protected_overlap: true })]);
    const out = await download(u.token, final.result.files[0].file_id);
    const [before, after] = await Promise.all([frameAt(clip, "mp4", 1.5), frameAt(out, "mp4", 1.5)]);
    const kept = { x: keep.bbox.x + 2, y: keep.bbox.y + 2, width: keep.bbox.width - 4, height: keep.bbox.height - 4 };
    expect(await meanDiff(before, after, kept)).toBeLessThan(2);
    const rest = { x: keep.bbox.x + keep.bbox.width + 2, y: drawn.y, width: drawn.x + drawn.width - (keep.bbox.x + keep.bbox.width + 2), height: drawn.height };
    expect(await edgeEnergy(after, rest)).toBeLessThan((await edgeEnergy(before, rest)) * 0.5);
  });

  it("skips an erasure that a protection region covers entirely", async () => {
    const u = await ctx.api.signUp();
    const box = { x: 20, y: 20, width: 40, height: 30 };
    const final = await run(u.token, "video.erase", {
      file_id: await uploadClip(u.token),
      regions: [
        { start_time: 0, end_time: 1, bbox: box, type: "erasure" },
        { start_time: 0, end_time: 3, bbox: { x: 10, y: 10, width: 60, height: 60 }, type: "protection" },
      ],
    });
    expect(final.result.erased).toEqual([]);
    expect(final.result.skipped).toEqual([expect.objectContaining({ bbox: box, reason: "protected" })]);
  });
});

describe("transcode and thumbnails, end to end", () => {
  it("transcodes to webm/vp9 within a maximum width, aspect kept, with Opus sound", async () => {
    const u = await ctx.api.signUp();
    const final = await run(u.token, "video.transcode", { file_id: await uploadClip(u.token, clean), format: "webm", codec: "vp9", max_width: 96, crf: 40 });
    expect(final.result.files[0]).toMatchObject({ content_type: "video/webm" });
    const path = join(dir, "out.webm");
    await writeFile(path, await download(u.token, final.result.files[0].file_id));
    const info = await probe(path);
    expect(info.format).toContain("webm");
    expect(info.streams.find((s) => s.type === "video")).toMatchObject({ codec: "vp9", width: 96, height: 72 });
    expect(info.streams.find((s) => s.type === "audio")?.codec).toBe("opus");
    expect(info.duration).toBeCloseTo(3, 0);
    // The result says what the file is (storage's measurement of it, ADR 056).
    expect(final.result).toMatchObject({ format: "webm", codec: "vp9", width: 96, height: 72, duration: info.duration, has_audio: true });
  });

  it("refuses a codec the container cannot hold with a 422 naming the field", async () => {
    const u = await ctx.api.signUp();
    const res = await ctx.api.post("/jobs", { type: "video.transcode", input: { file_id: await uploadClip(u.token, clean), format: "webm", codec: "h264" } }, u.token);
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("INVALID_INPUT");
    expect(JSON.stringify(res.body.error.details)).toContain("codec");
  });

  it("makes N evenly spaced thumbnails, and a contact sheet of the expected grid", async () => {
    const u = await ctx.api.signUp();
    const fileId = await uploadClip(u.token, clean);
    const spaced = await run(u.token, "video.thumbnails", { file_id: fileId, mode: "evenly_spaced", count: 3, format: "png" });
    expect(spaced.result.files).toHaveLength(3);
    expect(spaced.result.times).toEqual([0.5, 1.5, 2.5]);
    for (const f of spaced.result.files) {
      const meta = await sharp(Buffer.from(await download(u.token, f.file_id))).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["png", W, H]);
    }
    const sheet = await run(u.token, "video.thumbnails", { file_id: fileId, mode: "contact_sheet", count: 5, columns: 3, width: 80, format: "jpeg" });
    expect(sheet.result.files).toHaveLength(1);
    expect(sheet.result.sheet).toEqual({ columns: 3, rows: 2, tile_width: 80, tile_height: 60 });
    const meta = await sharp(Buffer.from(await download(u.token, sheet.result.files[0].file_id))).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 240, 120]);
  });
});
