import { readdir } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import { fetchInput } from "../inputs.ts";
import { PredictionError, type RunContext } from "../run-context.ts";
import { h264Output } from "./video.ts";

export interface MaskRequest {
  video: string;
  /** Where the object is on the first frame ([x, y] in pixels); the frame's centre when none. */
  clicks: Array<[number, number]>;
  maskType: "binary" | "highlighted" | "greenscreen";
  /** One video, or a picture per `interval`-th frame. */
  outputVideo: boolean;
  /** Frame rate of a video output; the input's when unset. */
  fps?: number;
  format: "webp" | "jpg" | "png";
  quality: number;
  interval: number;
}

/** `'[x,y],[x,y]'` as SAM 2 takes clicks. */
export function parseClicks(text: string | undefined): Array<[number, number]> {
  if (!text) return [];
  return [...text.matchAll(/\[\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\]/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/**
 * What SAM 2 gives for a video, made up: a white disc on black that starts where the first click is
 * and moves along a loop, for the input's whole length and size (binary), or the input seen through
 * that disc (greenscreen: green elsewhere; highlighted: a red tint on it).
 */
export async function generateMask(ctx: RunContext, req: MaskRequest): Promise<string[]> {
  const source = await fetchInput(ctx, "input_video", req.video);
  const info = await probe(source, { signal: ctx.signal }).catch((err: Error) => {
    throw new PredictionError(`input_video: not a readable video (${err.message.split("\n")[0]})`);
  });
  const stream = info.streams.find((s) => s.type === "video" && !s.attached_pic);
  if (!stream?.width || !stream.height) throw new PredictionError("input_video: has no video stream");
  const { width: w, height: h } = stream;
  const fps = req.fps ?? stream.fps ?? 30;
  const seconds = info.duration ?? 1;
  const frames = Math.max(1, Math.round(seconds * fps));

  const r = Math.max(4, Math.round(Math.min(w, h) * 0.18));
  const disc = join(ctx.workDir, "disc.png");
  await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${2 * r}" height="${2 * r}"><circle cx="${r}" cy="${r}" r="${r}" fill="#ffffff"/></svg>`))
    .png()
    .toFile(disc);
  const [cx, cy] = req.clicks[0] ?? [w / 2, h / 2];
  const period = Math.max(2, seconds).toFixed(3);
  const move = `x='${cx.toFixed(1)}-w/2+${(w * 0.15).toFixed(1)}*sin(2*PI*t/${period})':y='${cy.toFixed(1)}-h/2+${(h * 0.1).toFixed(1)}*sin(4*PI*t/${period})'`;
  const mask = `color=c=black:s=${w}x${h}:r=${fps}`;

  const graph = [`[1:v][2:v]overlay=${move}:eval=frame,format=gbrp[mask]`];
  if (req.maskType === "binary") graph.push("[mask]null[out]");
  else {
    const src = `[0:v]fps=${fps},scale=${w}:${h},format=gbrp`;
    if (req.maskType === "greenscreen") graph.push(`${src}[src]`, `color=c=0x00ff00:s=${w}x${h}:r=${fps},format=gbrp[key]`, "[key][src][mask]maskedmerge[out]");
    else graph.push(`${src},split[src][copy]`, "[copy]drawbox=x=0:y=0:w=iw:h=ih:color=red@0.5:t=fill[tint]", "[src][tint][mask]maskedmerge[out]");
  }
  graph.push("[out]format=yuv420p[v]");

  const build = (outputOptions: string[], out: string) =>
    runFfmpeg((cmd) => cmd.input(source).input(mask).inputFormat("lavfi").input(disc).complexFilter(graph).outputOptions(["-map", "[v]", ...outputOptions]).output(out), {
      signal: ctx.signal,
    });

  if (req.outputVideo) {
    await build(h264Output(fps, frames), join(ctx.outDir, "mask.mp4"));
    return [ctx.url("mask.mp4")];
  }
  const ext = req.format;
  const quality = ext === "png" ? [] : ext === "webp" ? ["-quality", String(req.quality)] : ["-q:v", String(Math.round(31 - (req.quality / 100) * 29))];
  graph[graph.length - 1] = `[out]select='not(mod(n\\,${req.interval}))',format=${ext === "png" ? "rgb24" : "yuv420p"}[v]`;
  await build(["-frames:v", String(Math.ceil(frames / req.interval)), "-fps_mode", "vfr", ...quality], join(ctx.outDir, `mask-%05d.${ext}`));
  const names = (await readdir(ctx.outDir)).filter((n) => n.startsWith("mask-") && n.endsWith(`.${ext}`)).sort();
  return names.map((n) => ctx.url(n));
}
