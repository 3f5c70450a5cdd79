import { join } from "node:path";
import sharp from "sharp";
import { runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import type { RunContext } from "../run-context.ts";
import { captionSvg } from "../text-card.ts";

export interface VideoRequest {
  prompt: string;
  width: number;
  height: number;
  fps: number;
  frames: number;
  /** Image-to-video: the first frame is this picture (a downloaded file), which then drifts in colour. */
  imagePath?: string;
}

/** The H.264 settings every emulated video shares; bit-exact so that the same request gives the same bytes. */
export const h264Output = (fps: number, frames: number) => [
  "-frames:v",
  String(frames),
  "-r",
  String(fps),
  "-c:v",
  "libx264",
  "-preset",
  "veryfast",
  "-crf",
  "28",
  "-pix_fmt",
  "yuv420p",
  "-movflags",
  "+faststart",
  "-fflags",
  "+bitexact",
  "-map_metadata",
  "-1",
];

const ffColour = (hex: string) => `0x${hex.slice(1)}`;

/**
 * An mp4 of exactly `frames` frames at `fps`: a moving gradient from ffmpeg's test sources with a
 * disc sweeping across it and the prompt as a caption, or, from a start image, that image slowly
 * changing hue with the caption fading in. No audio, as Wan's outputs.
 */
export async function generateVideo(ctx: RunContext, req: VideoRequest): Promise<string> {
  const { width: w, height: h, fps, frames } = req;
  const seconds = frames / fps;
  const caption = join(ctx.workDir, "caption.png");
  await sharp(Buffer.from(captionSvg({ width: w, height: h, text: req.prompt }))).png().toFile(caption);
  const name = "output.mp4";
  const out = join(ctx.outDir, name);

  if (req.imagePath) {
    const start = join(ctx.workDir, "start.png");
    await sharp(req.imagePath).rotate().resize(w, h, { fit: "cover" }).flatten({ background: "#000000" }).png().toFile(start);
    await runFfmpeg(
      (cmd) =>
        cmd
          .input(start)
          .inputOptions(["-loop", "1", "-framerate", String(fps)])
          .input(caption)
          .complexFilter([`[0:v]format=rgb24,hue=H='PI*t/${Math.max(1, seconds).toFixed(3)}'[b]`, `[b][1:v]overlay=0:0:enable='gte(t,${Math.min(0.5, seconds / 2).toFixed(3)})',format=yuv420p[v]`])
          .outputOptions(["-map", "[v]", ...h264Output(fps, frames)])
          .output(out),
      { signal: ctx.signal },
    );
    return ctx.url(name);
  }

  const seed = ctx.seed.derive("video");
  const r = Math.round(Math.min(w, h) * 0.12);
  const dot = join(ctx.workDir, "dot.png");
  await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${2 * r}" height="${2 * r}"><circle cx="${r}" cy="${r}" r="${r}" fill="${seed.colour(3, "light")}" fill-opacity="0.85"/></svg>`))
    .png()
    .toFile(dot);
  const period = Math.max(2, seconds).toFixed(3);
  const gradients = `gradients=s=${w}x${h}:r=${fps}:c0=${ffColour(seed.colour(1, "dark"))}:c1=${ffColour(seed.colour(2, "light"))}:seed=${seed.int(4, 0, 2 ** 31)}:speed=0.02:type=${seed.int(5, 0, 2)}`;
  await runFfmpeg(
    (cmd) =>
      cmd
        .input(gradients)
        .inputFormat("lavfi")
        .input(dot)
        .input(caption)
        .complexFilter([`[0:v][1:v]overlay=x='(W-w)/2+(W/3)*sin(2*PI*t/${period})':y='(H-h)/3+(H/5)*cos(2*PI*t/${period})'[m]`, "[m][2:v]overlay=0:0,format=yuv420p[v]"])
        .outputOptions(["-map", "[v]", ...h264Output(fps, frames)])
        .output(out),
    { signal: ctx.signal },
  );
  return ctx.url(name);
}
