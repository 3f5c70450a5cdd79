import { writeFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import type { JobContext, JobHandlers, JobOutput } from "@cutroom/worker-runtime";
import { SMALL_FILE_BYTES } from "@cutroom/runtime";
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
  // A small input is held in memory and, if small in pixels too, resized bytes to bytes: the job never
  // touches the disk (ADR 047). Anything larger goes through the job's temp dir and a sharp process.
  const input = await ctx.stage("fetch", async () => (await ctx.readInput(file_id, SMALL_FILE_BYTES)) ?? ctx.fetchInput(file_id));
  ctx.progress(30);

  // The output's name is known now: its upload ticket is asked for while sharp works.
  const filename = `${basename(input.filename, extname(input.filename)) || "image"}.${extensions[format]}`;
  const output = ctx.prepareOutput(filename, contentTypes[format]);
  const opts = { width, height, fit, format, quality, limits: ctx.limits };
  const image = await ctx.stage("process", async () => {
    const inMemory = "bytes" in input ? await engine.resizeBytes(input.bytes, opts, ctx.signal) : undefined;
    if (inMemory) return { ...inMemory, body: inMemory.data };
    // sharp knows a format by its bytes, not by the file's name.
    const inputPath = "path" in input ? input.path : join(ctx.tmpDir, "input");
    if ("bytes" in input) await writeFile(inputPath, input.bytes, { signal: ctx.signal });
    const resized = await engine.resize(inputPath, join(ctx.tmpDir, `output.${extensions[format]}`), opts, ctx.signal);
    return { ...resized, body: resized.path };
  });
  ctx.progress(70);

  const file = await ctx.stage("upload", () => output.upload(image.body));

  return { files: [file], width: image.width, height: image.height, format: image.format, size: image.size };
}
