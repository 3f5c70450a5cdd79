import { basename, extname, join } from "node:path";
import type { ImageRemoveBackgroundInput } from "@cutroom/contracts";
import { isJobFailure, JobFailure, type JobContext, type JobOutput } from "@cutroom/worker-runtime";
import type { KeyedImage } from "./chroma-key.ts";
import type { ImageEngine } from "./image-engine.ts";

/** method auto keys the picture locally when at least this share of its border is screen green. */
export const GREEN_BORDER_SHARE = 0.6;

/**
 * image.remove-background: an RGBA PNG of the input's size. A green screen is keyed out locally
 * (the catalog's chroma-key engine); any other picture goes to the catalog's background-removal
 * model, whose output is decoded and normalised before it is stored.
 */
export async function removeBackground(engine: ImageEngine, ctx: JobContext<ImageRemoveBackgroundInput>): Promise<JobOutput> {
  const input = ctx.input;
  const source = await ctx.stage("fetch", () => ctx.fetchInput(input.file_id));
  ctx.progress(10);
  const output = join(ctx.tmpDir, "cutout.png");
  const name = `${basename(source.filename, extname(source.filename)) || "image"}-cutout.png`;

  const removed = await ctx.stage("remove", async () => {
    // Cheap (a small copy): the picture's size for every method, and whether it is a green screen.
    const border = await engine.inspectBorder(source.path, ctx.limits, ctx.signal);
    ctx.progress(20);
    const keyed = input.method === "chroma_key" || (input.method === "auto" && border.green_share >= GREEN_BORDER_SHARE);

    if (keyed) {
      if (!border.key) throw new JobFailure("INVALID_INPUT", "method chroma_key needs a green screen: none of the picture's border is screen green");
      const model = ctx.models.resolve("image.remove-background", "green-screen");
      const image = await engine.chromaKey(source.path, output, { key: border.key, limits: ctx.limits }, ctx.signal);
      return { method: "chroma_key", ...image, green_border_share: round(border.green_share), key_color: hex(border.key), model: model.model, provider: ctx.models.local(model) };
    }

    const run = await ctx.models.predict({
      jobType: "image.remove-background",
      quality: input.quality,
      input: {},
      files: { image: source },
      filename: "cutout",
      maxOutputs: 1,
      progress: [25, 85],
    });
    let image: KeyedImage;
    try {
      image = await engine.toAlphaPng(run.downloads[0]!.path, output, { width: border.width, height: border.height, limits: ctx.limits }, ctx.signal);
    } catch (err) {
      if (isJobFailure(err) && err.code === "INVALID_MEDIA") throw new JobFailure("PROVIDER_ERROR", `${run.model.model} returned something that is not an image we can read`, { cause: err });
      throw err;
    }
    return { method: "model", ...image, green_border_share: round(border.green_share), model: run.model.model, provider: run.provider };
  });
  ctx.progress(90);

  const file = await ctx.stage("upload", () => ctx.uploadOutput(output, name, "image/png"));
  return { files: [file], format: "png", ...removed };
}

const round = (n: number) => Math.round(n * 1000) / 1000;
const hex = (rgb: readonly number[]) => `#${rgb.map((c) => c.toString(16).padStart(2, "0")).join("")}`;
