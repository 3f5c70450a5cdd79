import { stat } from "node:fs/promises";
import { join } from "node:path";
import { thumbnailSize, thumbnailTimes, type ThumbnailFormat, type VideoThumbnailsInput } from "@cutroom/contracts";
import { JobFailure, type JobContext, type JobOutput, type ResultFile } from "@cutroom/worker-runtime";
import { runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { stem } from "./media.ts";
import { measureVideo } from "./video-input.ts";

export const thumbnailOutputs: Record<ThumbnailFormat, { ext: string; contentType: string }> = {
  jpeg: { ext: "jpg", contentType: "image/jpeg" },
  png: { ext: "png", contentType: "image/png" },
  webp: { ext: "webp", contentType: "image/webp" },
};

function encoderArgs(format: ThumbnailFormat, quality: number): string[] {
  // mjpeg's scale runs 2 (best) to 31.
  if (format === "jpeg") return ["-c:v", "mjpeg", "-q:v", String(Math.round(31 - (quality / 100) * 29))];
  if (format === "webp") return ["-c:v", "libwebp", "-quality", String(quality)];
  return ["-c:v", "png"];
}

export interface ThumbnailPlan {
  /** The ffmpeg commands (without `ffmpeg`) in order: one seek per frame, then the tiling of a contact sheet. */
  commands: string[][];
  /** The images the job hands out, with the moment each shows (a sheet: its first frame's). */
  outputs: { path: string; time: number }[];
  tile: { width: number; height: number };
  sheet: { columns: number; rows: number; width: number; height: number } | null;
}

/**
 * The ffmpeg commands of a thumbnails input for a `src` video of `duration` s: each frame by a fast
 * seek (never decoding the whole video), a contact sheet by ffmpeg's tile filter over the frames.
 */
export function thumbnailsFfmpegArgs(input: VideoThumbnailsInput, src: { width: number; height: number }, duration: number, inputPath: string, outDir: string): ThumbnailPlan {
  const tile = thumbnailSize(input, src);
  const times = thumbnailTimes(input, duration);
  const sheet = input.mode === "contact_sheet";
  const out = thumbnailOutputs[input.format];
  const frames = times.map((time, i) => ({ time, path: join(outDir, sheet ? `tile-${String(i + 1).padStart(3, "0")}.png` : `thumb-${String(i + 1).padStart(3, "0")}.${out.ext}`) }));
  const commands = frames.map((f) => [
    "-v", "error", "-ss", String(f.time), "-i", inputPath, "-map", "0:v:0", "-frames:v", "1",
    "-vf", `scale=${tile.width}:${tile.height}`, ...(sheet ? ["-c:v", "png"] : encoderArgs(input.format, input.quality)), "-f", "image2", "-y", f.path,
  ]);
  if (!sheet) return { commands, outputs: frames, tile, sheet: null };
  const columns = Math.min(input.columns, times.length);
  const rows = Math.ceil(times.length / columns);
  const sheetPath = join(outDir, `sheet.${out.ext}`);
  commands.push([
    "-v", "error", "-framerate", "1", "-i", join(outDir, "tile-%03d.png"), "-vf", `tile=${columns}x${rows}`, "-frames:v", "1",
    ...encoderArgs(input.format, input.quality), "-f", "image2", "-y", sheetPath,
  ]);
  return { commands, outputs: [{ path: sheetPath, time: times[0]! }], tile, sheet: { columns, rows, width: columns * tile.width, height: rows * tile.height } };
}

/** video.thumbnails: one image at a time, N evenly spaced, or a contact sheet. */
export async function thumbnailsHandler(ctx: JobContext<VideoThumbnailsInput>): Promise<JobOutput> {
  const { input } = ctx;
  const { source, measured } = await ctx.stage("fetch", async () => {
    const source = await ctx.fetchInput(input.file_id);
    return { source, measured: await measureVideo(source, ctx.limits, ctx.signal, 0) };
  });
  if (input.mode === "single" && input.time !== undefined && input.time >= measured.duration) {
    throw new JobFailure("INVALID_INPUT", `time ${input.time} s is past the end of the video (${Math.round(measured.duration * 1000) / 1000} s)`);
  }
  const plan = thumbnailsFfmpegArgs(input, measured.frame, measured.duration, source.path, ctx.tmpDir);
  await ctx.stage("extract", async () => {
    for (const [i, args] of plan.commands.entries()) {
      await runFfmpegArgs(args, { signal: ctx.signal });
      ctx.progress(5 + (85 * (i + 1)) / plan.commands.length);
    }
    for (const o of plan.outputs) {
      // A seek that lands past the last frame writes nothing and ffmpeg still exits 0.
      if ((await stat(o.path).catch(() => undefined))?.size === undefined) throw new JobFailure("INVALID_MEDIA", `no frame could be read at ${o.time} s`);
    }
  });
  const out = thumbnailOutputs[input.format];
  const name = stem(source.filename, "video");
  const files: ResultFile[] = await ctx.stage("upload", async () => {
    const uploaded: ResultFile[] = [];
    for (const [i, o] of plan.outputs.entries()) {
      const suffix = plan.sheet ? "sheet" : plan.outputs.length === 1 ? "thumb" : `thumb-${i + 1}`;
      uploaded.push(await ctx.uploadOutput(o.path, `${name}-${suffix}.${out.ext}`, out.contentType));
    }
    return uploaded;
  });
  return {
    files,
    mode: input.mode,
    format: input.format,
    times: plan.sheet ? thumbnailTimes(input, measured.duration) : plan.outputs.map((o) => o.time),
    width: plan.sheet?.width ?? plan.tile.width,
    height: plan.sheet?.height ?? plan.tile.height,
    ...(plan.sheet ? { sheet: { columns: plan.sheet.columns, rows: plan.sheet.rows, tile_width: plan.tile.width, tile_height: plan.tile.height } } : {}),
  };
}
