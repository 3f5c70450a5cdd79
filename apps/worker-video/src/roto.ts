import { join } from "node:path";
import { rotoPresets, type VideoRotoInput } from "@cutroom/contracts";
import { checkLimits, JobFailure, type JobContext, type JobOutput, type ModelFile } from "@cutroom/worker-runtime";
import { probe, runFfmpeg, type ProbeResult } from "@cutroom/worker-runtime/ffmpeg";
import { matteSettings, sequenceFrames, writeMatte, zipFiles, type MatteFormat } from "./matte.ts";
import { stem, videoStreamOf } from "./media.ts";

const outputs: Record<MatteFormat, { ext: string; contentType: string }> = {
  prores_4444: { ext: "mov", contentType: "video/quicktime" },
  vp9: { ext: "webm", contentType: "video/webm" },
  png_sequence: { ext: "zip", contentType: "application/zip" },
};

/**
 * video.roto (seed 000): the frame range cut out, SAM 2 (the catalog's model) pointed at the subject
 * by the preset's click and told the description, and its mask made into the alpha channel with
 * ffmpeg: tightness as erosion or dilation, smoothing as temporal averaging and feather.
 */
export async function roto(ctx: JobContext<VideoRotoInput>): Promise<JobOutput> {
  const input = ctx.input;

  const { clip, info, fps, size, sourceName } = await ctx.stage("fetch", async () => {
    const source = await ctx.fetchInput(input.file_id);
    const sourceInfo = await probe(source.path, { signal: ctx.signal }).catch((err: Error) => {
      if (ctx.signal.aborted) throw err;
      throw new JobFailure("INVALID_MEDIA", "the input is not a readable video file", { cause: err });
    });
    const video = videoStreamOf(sourceInfo);
    if (!video?.width || !video.height) throw new JobFailure("INVALID_MEDIA", "the input has no video stream");
    if (sourceInfo.duration === null) throw new JobFailure("INVALID_MEDIA", "the video's length cannot be measured");
    const frame = video.width * video.height;
    checkLimits(ctx.limits, { input_pixels: frame, output_pixels: frame, media_seconds: sourceInfo.duration });
    const fps = video.fps ?? 25;
    const sourceName = stem(source.filename, "video");
    if (!input.frame_range) return { clip: source, info: sourceInfo, fps, size: { width: video.width, height: video.height }, sourceName };

    // Only the asked frames go to the model (it is paid by the second) and into the output.
    const [start, end] = input.frame_range.split("-").map(Number) as [number, number];
    if (start / fps >= sourceInfo.duration) {
      throw new JobFailure("INVALID_INPUT", `frame_range starts at frame ${start}, but the video has only about ${Math.round(sourceInfo.duration * fps)} frames`);
    }
    const path = join(ctx.tmpDir, "clip.mp4");
    await runFfmpeg(
      (cmd) =>
        cmd
          .input(source.path)
          .videoFilters([`trim=start_frame=${start}:end_frame=${end}`, "setpts=PTS-STARTPTS", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "format=yuv420p"])
          .outputOptions(["-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16"])
          .output(path),
      { signal: ctx.signal, onProgress: (p) => ctx.progress(2 + p * 0.08), durationSec: Math.min(end / fps, sourceInfo.duration) - start / fps },
    );
    const clipInfo = await probe(path, { signal: ctx.signal });
    const clipVideo = videoStreamOf(clipInfo)!;
    return {
      clip: { path, filename: "clip.mp4", contentType: "video/mp4", size: 0 },
      info: clipInfo,
      fps,
      size: { width: clipVideo.width ?? video.width, height: clipVideo.height ?? video.height },
      sourceName,
    };
  });
  const duration = info.duration ?? 0;

  const preset = rotoPresets[input.preset];
  const run = await ctx.stage("track", () =>
    ctx.models.predict({
      jobType: "video.roto",
      quality: input.quality,
      input: {
        click_coordinates: `[${Math.round(size.width * preset.click[0])},${Math.round(size.height * preset.click[1])}]`,
        click_labels: "1",
        click_frames: "0",
        // SAM 2 labels each clicked object; the description is that label (commas separate objects there).
        click_object_ids: input.description.replace(/[,\n\r]+/g, " ").slice(0, 200),
        video_fps: Math.min(60, Math.max(1, Math.round(fps))),
      },
      files: { input_video: clip },
      filename: "mask",
      progress: [10, 60],
    }),
  );
  const mask = await maskSource(ctx, run.downloads, fps);

  const format: MatteFormat = input.output_format === "png_sequence" ? "png_sequence" : input.alpha_codec;
  const settings = matteSettings(input.tightness, input.smoothing, size);
  const out = outputs[format];
  const matted = join(ctx.tmpDir, format === "png_sequence" ? "frames" : `roto.${out.ext}`);
  const name = `${sourceName}-roto${format === "png_sequence" ? "-png" : ""}.${out.ext}`;

  const facts = await ctx.stage("matte", async () => {
    await writeMatte({ sourcePath: clip.path, ...mask, size, settings, format, outputPath: matted, durationSec: duration, signal: ctx.signal, onProgress: (p) => ctx.progress(60 + p * 0.3) });
    if (format === "png_sequence") {
      const frames = await sequenceFrames(matted);
      if (frames.length === 0) throw new Error("ffmpeg wrote no frames");
      await zipFiles(frames, join(ctx.tmpDir, name), "frames");
      return { frames: frames.length, pix_fmt: "rgba", codec: "png" };
    }
    const written = await probe(matted, { signal: ctx.signal });
    const video = videoStreamOf(written);
    if (!video?.alpha) throw new Error(`the ${format} output has no alpha channel (${video?.pix_fmt ?? "no video"})`);
    return { frames: Math.round((written.duration ?? duration) * fps), pix_fmt: video.pix_fmt, codec: video.codec };
  });

  const file = await ctx.stage("upload", () => ctx.uploadOutput(format === "png_sequence" ? join(ctx.tmpDir, name) : matted, name, out.contentType));
  return {
    files: [file],
    output_format: input.output_format,
    ...(format === "png_sequence" ? {} : { alpha_codec: format }),
    ...facts,
    width: size.width,
    height: size.height,
    fps,
    duration_s: Math.round(duration * 1000) / 1000,
    frame_range: input.frame_range ?? null,
    preset: input.preset,
    description: input.description,
    matte: { erode_px: settings.erodePx, dilate_px: settings.dilatePx, feather_sigma: settings.featherSigma, temporal_frames: settings.temporalFrames },
    model: run.model.model,
    provider: run.provider,
  };
}

/** The model's mask as ffmpeg reads it: its video, or its image sequence as a pattern at the footage's rate. */
async function maskSource(ctx: JobContext<VideoRotoInput>, downloads: ModelFile[], fps: number): Promise<{ maskPath: string; maskFps?: number }> {
  const first = downloads[0]!;
  if (first.contentType.startsWith("video/")) {
    let info: ProbeResult | undefined;
    try {
      info = await probe(first.path, { signal: ctx.signal });
    } catch (err) {
      if (ctx.signal.aborted) throw err;
    }
    if (!info || !videoStreamOf(info)) throw new JobFailure("PROVIDER_ERROR", `${first.filename} from the model is not a mask video we can read`);
    return { maskPath: first.path };
  }
  if (!downloads.every((d) => d.contentType.startsWith("image/"))) throw new JobFailure("PROVIDER_ERROR", "the model's mask is neither a video nor a sequence of images");
  // One picture: the same mask on every frame.
  if (downloads.length === 1) return { maskPath: first.path };
  // Downloads of several outputs are named mask-1.<ext>, mask-2.<ext>… in the model's order.
  const ext = first.filename.slice(first.filename.lastIndexOf("."));
  return { maskPath: join(ctx.tmpDir, `model-mask-%d${ext}`), maskFps: fps };
}
