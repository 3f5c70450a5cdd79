import { join } from "node:path";
import { generatedImageSize, type ImageGenerateInput } from "@cutroom/contracts";
import { enhancePrompt, isJobFailure, JobFailure, type InputFile, type JobContext, type JobOutput, type ModelFile } from "@cutroom/worker-runtime";
import { runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import type { ImageEngine } from "./image-engine.ts";

/**
 * image.generate: the prompt (enhanced first if asked), the hosted model of the catalog for the
 * family and quality, then each output normalised with sharp to the asked size as PNG and uploaded,
 * in the model's order. The result records the provider's run(s).
 */
export async function generateImages(engine: ImageEngine, ctx: JobContext<ImageGenerateInput>): Promise<JobOutput> {
  const input = ctx.input;
  const size = generatedImageSize(input);

  const { references, prompt } = await ctx.stage("prepare", async () => {
    // The references and the prompt's enhancement at once; an id given twice is fetched once (both would write one path).
    const ids = input.reference_file_ids ?? [];
    const fetches = new Map<string, Promise<InputFile>>();
    for (const id of ids) if (!fetches.has(id)) fetches.set(id, ctx.fetchInput(id));
    const [references, prompt] = await Promise.all([
      Promise.all(ids.map((id) => fetches.get(id)!)),
      input.enhance_prompt ? enhancePrompt(ctx.models, { prompt: input.prompt, family: input.family, medium: "image" }) : input.prompt,
    ]);
    return { references, prompt };
  });

  const run = await ctx.stage("generate", () =>
    ctx.models.predict({
      jobType: "image.generate",
      quality: input.quality,
      variant: input.family,
      input: modelInput(input, prompt, size),
      // The first reference is the image to start from; Replicate's image models call it `image`.
      ...(references[0] ? { files: { image: references[0] } } : {}),
      filename: "image",
      maxOutputs: input.num_images,
      progress: [10, 85],
    }),
  );
  if (run.downloads.length < input.num_images) {
    throw new JobFailure("PROVIDER_ERROR", `${run.model.model} made ${run.downloads.length} of the ${input.num_images} images asked for`);
  }

  const files = await ctx.stage("upload", async () => {
    const uploaded = [];
    for (const [i, download] of run.downloads.entries()) {
      const png = await normalise(engine, ctx, download, i, size);
      uploaded.push(await ctx.uploadOutput(png, `image-${i + 1}.png`, "image/png"));
      ctx.progress(85 + (15 * (i + 1)) / run.downloads.length);
    }
    return uploaded;
  });

  return {
    files,
    width: size.width,
    height: size.height,
    prompt: input.prompt,
    ...(input.enhance_prompt ? { enhanced_prompt: prompt } : {}),
    model: run.model.model,
    provider: run.provider,
    ...(ctx.models.runs.length > 1 ? { provider_runs: ctx.models.runs } : {}),
  };
}

/** What each family's Replicate model reads. Sizes are asked for exactly; `normalise` makes sure of them. */
function modelInput(input: ImageGenerateInput, prompt: string, size: { width: number; height: number }): Record<string, unknown> {
  const common = { prompt, num_outputs: input.num_images, ...(input.seed !== undefined ? { seed: input.seed } : {}) };
  const ratio = input.aspect_ratio ?? nearestRatio(size);
  switch (input.family) {
    case "sdxl":
      return { ...common, width: size.width, height: size.height, ...(input.negative_prompt ? { negative_prompt: input.negative_prompt } : {}), prompt_strength: 0.8 };
    case "flux":
      return { ...common, aspect_ratio: ratio, width: size.width, height: size.height, prompt_strength: 0.8 };
    case "wan":
      return { ...common, aspect_ratio: ratio, width: size.width, height: size.height };
  }
}

function nearestRatio({ width, height }: { width: number; height: number }): string {
  const ratios = ["1:1", "16:9", "9:16", "4:3", "3:4"] as const;
  const value = (r: string) => Number(r.split(":")[0]) / Number(r.split(":")[1]);
  return ratios.reduce((best, r) => (Math.abs(Math.log(value(r) / (width / height))) < Math.abs(Math.log(value(best) / (width / height))) ? r : best));
}

/**
 * A provider's output as the PNG asked for: Wan's single frame taken out of its video, then every
 * image decoded by sharp (so a damaged output fails here) and fitted to the asked size.
 */
async function normalise(engine: ImageEngine, ctx: JobContext<ImageGenerateInput>, download: ModelFile, i: number, size: { width: number; height: number }): Promise<string> {
  let source = download.path;
  if (download.contentType.startsWith("video/")) {
    source = join(ctx.tmpDir, `frame-${i + 1}.png`);
    const frame = source;
    await runFfmpeg((cmd) => cmd.input(download.path).frames(1).output(frame), { signal: ctx.signal }).catch((err) => {
      if (ctx.signal.aborted) throw err;
      throw new JobFailure("PROVIDER_ERROR", "the model's video output has no frame we can read", { cause: err });
    });
  }
  const out = join(ctx.tmpDir, `image-${i + 1}.png`);
  try {
    await engine.resize(source, out, { ...size, fit: "cover", format: "png", quality: 100, limits: ctx.limits }, ctx.signal);
  } catch (err) {
    if (isJobFailure(err) && err.code === "INVALID_MEDIA") throw new JobFailure("PROVIDER_ERROR", `output ${i + 1} of the model is not an image we can read`, { cause: err });
    throw err;
  }
  return out;
}
