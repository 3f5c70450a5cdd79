import sharp, { type Metadata } from "sharp";
import type { JobLimits } from "@cutroom/contracts";
import { JobFailure, checkLimits } from "@cutroom/worker-runtime";

type Rgb = [number, number, number];

/** What the picture's border says about a green screen behind it, and the picture's size (as displayed). */
export interface BorderReport {
  width: number;
  height: number;
  /** Share (0–1) of the border's pixels that are screen green. */
  green_share: number;
  /** The screen's colour: the median of those pixels; null when there are none. */
  key: Rgb | null;
}

// The border is judged on a small copy: enough pixels to vote, fast whatever the size.
const INSPECT_SIDE = 256;
const BORDER_SHARE = 0.05;

/** Screen green: clearly more green than red or blue, and not dark. */
const isScreenGreen = (r: number, g: number, b: number) => g >= 80 && g - Math.max(r, b) >= 0.25 * g;

async function openImage(inputPath: string, limits: JobLimits) {
  let meta: Metadata;
  try {
    meta = await sharp(inputPath, { failOn: "error", limitInputPixels: false }).metadata();
  } catch (err) {
    throw new JobFailure("INVALID_MEDIA", "the input is not an image in a format we can read", { cause: err });
  }
  const size = meta.autoOrient ?? { width: meta.width, height: meta.height };
  if (!size.width || !size.height) throw new JobFailure("INVALID_MEDIA", "the input image has no size");
  checkLimits(limits, { input_pixels: size.width * size.height, output_pixels: size.width * size.height });
  return { image: sharp(inputPath, { failOn: "error", limitInputPixels: limits.max_input_pixels }).autoOrient(), width: size.width, height: size.height };
}

const decodeFailure = (err: NodeJS.ErrnoException) => {
  if (err.code) throw err;
  throw new JobFailure("INVALID_MEDIA", "the image is damaged or cannot be decoded", { cause: err });
};

/** How much of the picture's outer band (5% of each side) is screen green, and which green. */
export async function inspectBorder(inputPath: string, limits: JobLimits): Promise<BorderReport> {
  const { image, width, height } = await openImage(inputPath, limits);
  const { data, info } = await image
    .resize({ width: INSPECT_SIDE, height: INSPECT_SIDE, fit: "inside" })
    .flatten({ background: "#000000" })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch(decodeFailure);
  const band = Math.max(1, Math.round(Math.min(info.width, info.height) * BORDER_SHARE));
  const greens: Rgb[] = [];
  let total = 0;
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      if (x >= band && x < info.width - band && y >= band && y < info.height - band) continue;
      const i = (y * info.width + x) * 3;
      total++;
      if (isScreenGreen(data[i]!, data[i + 1]!, data[i + 2]!)) greens.push([data[i]!, data[i + 1]!, data[i + 2]!]);
    }
  }
  const median = (c: 0 | 1 | 2) => greens.map((p) => p[c]).sort((a, b) => a - b)[greens.length >> 1]!;
  return { width, height, green_share: total ? greens.length / total : 0, key: greens.length ? [median(0), median(1), median(2)] : null };
}

export interface KeyedImage {
  width: number;
  height: number;
  size: number;
  /** Share (0–1) of the pixels made fully transparent. */
  transparent_share: number;
}

/**
 * A colour-difference key, as compositors pull from a green screen: how much greener than its
 * red and blue a pixel is, against the screen's own excess, gives its transparency (at the
 * screen's excess or above: gone; at a third of it or below: kept), and green spill is taken out
 * of the edges it leaves. The result is an RGBA PNG of the input's size; an alpha the input had is kept.
 */
export async function chromaKey(inputPath: string, outputPath: string, opts: { key: Rgb; limits: JobLimits }): Promise<KeyedImage> {
  const { image, width, height } = await openImage(inputPath, opts.limits);
  const { data } = await image.ensureAlpha().raw().toBuffer({ resolveWithObject: true }).catch(decodeFailure);
  const [kr, kg, kb] = opts.key;
  const screen = Math.max(1, kg - Math.max(kr, kb));
  const [low, high] = [screen / 3, screen * 0.85];
  let cleared = 0;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i]!;
    const g = data[i + 1]!;
    const b = data[i + 2]!;
    const excess = g - Math.max(r, b);
    if (excess <= low) continue;
    const keep = excess >= high ? 0 : 1 - (excess - low) / (high - low);
    data[i + 3] = Math.round(data[i + 3]! * keep);
    if (data[i + 3] === 0) cleared++;
    // Despill: an edge pixel keeps no more green than its brighter other channel.
    data[i + 1] = Math.max(r, b);
  }
  const info = await sharp(data, { raw: { width, height, channels: 4 } }).png().toFile(outputPath);
  return { width: info.width, height: info.height, size: info.size, transparent_share: cleared / (width * height) };
}

/**
 * A background-removal model's output as the job's PNG: decoded (a damaged one fails here), given
 * an alpha channel if it came without one, and at the input's size.
 */
export async function toAlphaPng(inputPath: string, outputPath: string, opts: { width: number; height: number; limits: JobLimits }): Promise<KeyedImage> {
  const { image } = await openImage(inputPath, opts.limits);
  const { data, info } = await image
    .resize({ width: opts.width, height: opts.height, fit: "fill" })
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch(decodeFailure);
  let cleared = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] === 0) cleared++;
  const out = await sharp(data, { raw: { width: info.width, height: info.height, channels: 4 } }).png().toFile(outputPath);
  return { width: out.width, height: out.height, size: out.size, transparent_share: cleared / (info.width * info.height) };
}
