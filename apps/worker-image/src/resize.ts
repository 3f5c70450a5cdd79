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
  let meta: Metadata;
  try {
    // The header alone; with a pixel limit sharp would refuse here as if the image were damaged.
    meta = await sharp(inputPath, { failOn: "error", limitInputPixels: false }).metadata();
  } catch (err) {
    throw new JobFailure("INVALID_MEDIA", "the input is not an image in a format we can read", { cause: err });
  }
  // The size as displayed (EXIF orientation applied), which is what autoOrient hands resize.
  const src = meta.autoOrient ?? { width: meta.width, height: meta.height };
  if (!src.width || !src.height) throw new JobFailure("INVALID_MEDIA", "the input image has no size");
  const out = resizedSize(src, opts);
  checkLimits(opts.limits, { input_pixels: src.width * src.height, output_pixels: out.width * out.height });
  if (Math.max(src.width * src.height, out.width * out.height) > maxPixels) return undefined;
  // sharp's own pixel limit as well: it guards the decode itself.
  const image = sharp(inputPath, { failOn: "error", limitInputPixels: opts.limits.max_input_pixels });
  const info = await image
    .autoOrient()
    .resize({ width: opts.width, height: opts.height, fit: opts.fit })
    .toFormat(opts.format, opts.format === "png" ? {} : { quality: opts.quality })
    .toFile(outputPath)
    .catch((err: NodeJS.ErrnoException) => {
      // Disk and permission errors carry an errno code and may pass; a corrupt image never will.
      if (err.code) throw err;
      throw new JobFailure("INVALID_MEDIA", "the image is damaged or cannot be converted as asked", { cause: err });
    });
  return { path: outputPath, width: info.width, height: info.height, format: opts.format, size: info.size };
}
