import { basename, extname, join } from "node:path";
import type { JobContext, JobHandlers, JobOutput } from "@cutroom/worker-runtime";
import { generateImages } from "./generate.ts";
import type { ImageEngine } from "./image-engine.ts";
import { removeBackground } from "./remove-background.ts";
import { contentTypes, extensions, type ResizeOptions } from "./resize.ts";

type ImageJobInput = Omit<ResizeOptions, "quality" | "limits"> & { file_id: string; quality?: number };

// Thumbnails take no quality from the client; this keeps them small without visible blocks.
const THUMBNAIL_QUALITY = 75;

/** worker-image: image.resize and image.thumbnail (fetch → process → upload), image.generate and image.remove-background (hosted models, or a local chroma key). */
export function createImageHandlers(engine: ImageEngine): JobHandlers {
  return {
    "image.resize": (ctx) => processImage(engine, ctx),
    "image.thumbnail": (ctx) => processImage(engine, ctx),
    "image.generate": (ctx) => generateImages(engine, ctx),
    "image.remove-background": (ctx) => removeBackground(engine, ctx),
  };
}

async function processImage(engine: ImageEngine, ctx: JobContext<ImageJobInput>): Promise<JobOutput> {
  const { file_id, width, height, fit, format, quality = THUMBNAIL_QUALITY } = ctx.input;
  const input = await ctx.stage("fetch", () => ctx.fetchInput(file_id));
  ctx.progress(30);

  // The output's name is known now: its upload ticket is asked for while sharp works.
  const filename = `${basename(input.filename, extname(input.filename)) || "image"}.${extensions[format]}`;
  const output = ctx.prepareOutput(filename, contentTypes[format]);
  const outputPath = join(ctx.tmpDir, `output.${extensions[format]}`);
  const image = await ctx.stage("process", () => engine.resize(input.path, outputPath, { width, height, fit, format, quality, limits: ctx.limits }, ctx.signal));
  ctx.progress(70);

  const file = await ctx.stage("upload", () => output.upload(image.path));

  return { files: [file], width: image.width, height: image.height, format: image.format, size: image.size };
}
