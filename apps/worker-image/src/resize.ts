import sharp, { type Metadata } from "sharp";
import { resizedSize, type JobLimits } from "@cutroom/contracts";
import { JobFailure, checkLimits } from "@cutroom/worker-runtime";

export type ImageFormat = "jpeg" | "png" | "webp" | "avif";
export type Fit = "cover" | "contain" | "fill" | "inside" | "outside";

export interface ResizeOptions {
  width?: number;
  height?: number;
  fit: Fit;
  format: ImageFormat;
  /** 1–100; png ignores it (lossless). */
  quality: number;
  /** The job's bounds: the input is measured and the output sized before anything is decoded. */
  limits: JobLimits;
}

export interface ResizedImage {
  path: string;
  width: number;
  height: number;
  format: ImageFormat;
  size: number;
}

export const contentTypes: Record<ImageFormat, string> = {
  jpeg: "image/jpeg",
  png: "image/png",
  webp: "image/webp",
  avif: "image/avif",
};
export const extensions: Record<ImageFormat, string> = { jpeg: "jpg", png: "png", webp: "webp", avif: "avif" };

/**
 * Decodes the image at `inputPath`, fits it into width×height and encodes it to `outputPath`.
 * Anything sharp cannot decode is the input's fault: a JobFailure(INVALID_MEDIA), never retried.
 * An input or output past the job's limits is refused from the header alone (LIMIT_EXCEEDED).
 */
export async function resizeImage(inputPath: string, outputPath: string, opts: ResizeOptions): Promise<ResizedImage> {
  return (await resizeSmallImage(inputPath, outputPath, opts, Number.POSITIVE_INFINITY))!;
}

/** As resizeImage, when neither the input nor the output has more than `maxPixels`; else undefined, nothing decoded. */
export async function resizeSmallImage(inputPath: string, outputPath: string, opts: ResizeOptions, maxPixels: number): Promise<ResizedImage | undefined> {
  if (!(await fits(inputPath, opts, maxPixels))) return undefined;
  const info = await converted(pipelineOf(inputPath, opts).toFile(outputPath));
  return { path: outputPath, width: info.width, height: info.height, format: opts.format, size: info.size };
}

/** An image resized from bytes to bytes, in memory (a small job's, ADR 047). */
export interface ResizedBytes extends Omit<ResizedImage, "path"> {
  data: Buffer;
}

/** As resizeSmallImage, from bytes in memory to bytes in memory: no file read or written. */
export async function resizeSmallBytes(input: Buffer, opts: ResizeOptions, maxPixels: number): Promise<ResizedBytes | undefined> {
  if (!(await fits(input, opts, maxPixels))) return undefined;
  const { data, info } = await converted(pipelineOf(input, opts).toBuffer({ resolveWithObject: true }));
  return { data, width: info.width, height: info.height, format: opts.format, size: info.size };
}

/**
 * Measures the input from its header (EXIF orientation applied, which is what autoOrient hands resize)
 * and checks it and the output against the job's limits (LIMIT_EXCEEDED); false when either has more
 * than `maxPixels`. What sharp cannot read is the input's fault: INVALID_MEDIA, never retried.
 */
async function fits(input: string | Buffer, opts: ResizeOptions, maxPixels: number): Promise<boolean> {
  let meta: Metadata;
  try {
    // The header alone; with a pixel limit sharp would refuse here as if the image were damaged.
    meta = await sharp(input, { failOn: "error", limitInputPixels: false }).metadata();
  } catch (err) {
    throw new JobFailure("INVALID_MEDIA", "the input is not an image in a format we can read", { cause: err });
  }
  const src = meta.autoOrient ?? { width: meta.width, height: meta.height };
  if (!src.width || !src.height) throw new JobFailure("INVALID_MEDIA", "the input image has no size");
  const out = resizedSize(src, opts);
  checkLimits(opts.limits, { input_pixels: src.width * src.height, output_pixels: out.width * out.height });
  return Math.max(src.width * src.height, out.width * out.height) <= maxPixels;
}

/** The resize itself, with sharp's own pixel limit as well: it guards the decode. */
function pipelineOf(input: string | Buffer, opts: ResizeOptions) {
  return sharp(input, { failOn: "error", limitInputPixels: opts.limits.max_input_pixels })
    .autoOrient()
    .resize({ width: opts.width, height: opts.height, fit: opts.fit })
    .toFormat(opts.format, opts.format === "png" ? {} : { quality: opts.quality });
}

/** Disk and permission errors carry an errno code and may pass; a corrupt image never will. */
function converted<T>(result: Promise<T>): Promise<T> {
  return result.catch((err: NodeJS.ErrnoException) => {
    if (err.code) throw err;
    throw new JobFailure("INVALID_MEDIA", "the image is damaged or cannot be converted as asked", { cause: err });
  });
}
