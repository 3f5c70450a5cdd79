import sharp from "sharp";
import { JobFailure } from "@cutroom/worker-runtime";

export type ImageFormat = "jpeg" | "png" | "webp" | "avif";
export type Fit = "cover" | "contain" | "fill" | "inside" | "outside";

export interface ResizeOptions {
  width?: number;
  height?: number;
  fit: Fit;
  format: ImageFormat;
  /** 1–100; png ignores it (lossless). */
  quality: number;
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
 */
export async function resizeImage(inputPath: string, outputPath: string, opts: ResizeOptions): Promise<ResizedImage> {
  const image = sharp(inputPath, { failOn: "error" });
  try {
    await image.metadata();
  } catch (err) {
    throw new JobFailure("INVALID_MEDIA", "the input is not an image in a format we can read", { cause: err });
  }
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
