import { join } from "node:path";
import sharp from "sharp";
import { fetchInput } from "../inputs.ts";
import type { RunContext } from "../run-context.ts";
import { captionSvg, cardSvg } from "../text-card.ts";

export type ImageFormat = "png" | "webp" | "jpg";

/** Width and height of about `megapixels` at `ratio` ("16:9"), each a multiple of `multiple`, as Flux sizes its outputs. */
export function sizeForAspect(ratio: string, megapixels = 1, multiple = 64): { width: number; height: number } {
  const [rw, rh] = ratio.split(":").map(Number) as [number, number];
  const area = megapixels * 1024 * 1024;
  const round = (v: number) => Math.max(multiple, Math.round(v / multiple) * multiple);
  return { width: round(Math.sqrt((area * rw) / rh)), height: round(Math.sqrt((area * rh) / rw)) };
}

export interface ImageRequest {
  prompt: string;
  width: number;
  height: number;
  count: number;
  format: ImageFormat;
  /** 0–100, for webp and jpg. */
  quality: number;
  /** A picture to start from (image-to-image): the outputs show it under the prompt. */
  image?: string;
}

/**
 * `count` pictures of the asked size that show the prompt, each different (its own seed) and the same
 * for the same request. With a start image, that image fills the frame and the prompt is a caption.
 */
export async function generateImages(ctx: RunContext, req: ImageRequest): Promise<string[]> {
  const base = req.image ? await sharp(await fetchInput(ctx, "image", req.image)).rotate().resize(req.width, req.height, { fit: "cover" }).png().toBuffer() : undefined;
  const urls: string[] = [];
  for (let i = 0; i < req.count; i++) {
    ctx.signal.throwIfAborted();
    const seed = ctx.seed.derive("image", i);
    const label = `synthetic · model emulator${req.count > 1 ? ` · ${i + 1}/${req.count}` : ""}`;
    const picture = base
      ? sharp(base).composite([{ input: Buffer.from(captionSvg({ width: req.width, height: req.height, text: req.prompt })) }])
      : sharp(Buffer.from(cardSvg({ width: req.width, height: req.height, text: req.prompt, seed, label })));
    const name = `out-${i}.${req.format}`;
    // Flattened first: a composite over an SVG keeps an alpha channel that jpg cannot hold and png need not.
    const flat = sharp(await picture.flatten({ background: "#000000" }).png().toBuffer());
    const encoded = req.format === "png" ? flat.png() : req.format === "webp" ? flat.webp({ quality: req.quality }) : flat.jpeg({ quality: req.quality });
    await encoded.toFile(join(ctx.outDir, name));
    urls.push(ctx.url(name));
  }
  return urls;
}

/**
 * A PNG with alpha of the input picture, cut out the simple way: the colour of the picture's border
 * is taken as the background and made transparent (softly, by distance from it). When that leaves
 * next to nothing (a picture of one colour), a centred ellipse is kept instead.
 */
export async function removeBackground(ctx: RunContext, image: string): Promise<string> {
  const path = await fetchInput(ctx, "image", image);
  const { data, info } = await sharp(path).rotate().removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width: w, height: h, channels } = info;
  const at = (x: number, y: number) => (y * w + x) * channels;

  const bg = [0, 0, 0];
  let n = 0;
  const add = (x: number, y: number) => {
    for (let c = 0; c < 3; c++) bg[c]! += data[at(x, y) + c]!;
    n++;
  };
  for (let x = 0; x < w; x++) {
    add(x, 0);
    add(x, h - 1);
  }
  for (let y = 1; y < h - 1; y++) {
    add(0, y);
    add(w - 1, y);
  }
  for (let c = 0; c < 3; c++) bg[c]! /= n;

  const alpha = Buffer.alloc(w * h);
  let kept = 0;
  for (let i = 0; i < w * h; i++) {
    const p = i * channels;
    const d = Math.hypot(data[p]! - bg[0]!, data[p + 1]! - bg[1]!, data[p + 2]! - bg[2]!);
    // Below 30 is background noise, above 80 clearly the subject; in between, partly transparent.
    const a = Math.round(Math.min(1, Math.max(0, (d - 30) / 50)) * 255);
    alpha[i] = a;
    if (a > 127) kept++;
  }
  if (kept < w * h * 0.005) {
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) alpha[y * w + x] = ((x - w / 2) / (w * 0.35)) ** 2 + ((y - h / 2) / (h * 0.42)) ** 2 <= 1 ? 255 : 0;
  }
  // sharp hands a blurred single channel back as three: extractChannel keeps the one.
  const softened = await sharp(alpha, { raw: { width: w, height: h, channels: 1 } }).blur(0.8).extractChannel(0).raw().toBuffer();
  const name = "output.png";
  await sharp(data, { raw: { width: w, height: h, channels } })
    .joinChannel(softened, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toFile(join(ctx.outDir, name));
  return ctx.url(name);
}
