import { join } from "node:path";
import { generatedVideoFrame, type VideoGenerateInput } from "@cutroom/contracts";
import { enhancePrompt, JobFailure, type InputFile, type JobContext, type JobOutput } from "@cutroom/worker-runtime";
import { probe, runFfmpeg, type ProbeResult } from "@cutroom/worker-runtime/ffmpeg";
import { videoStreamOf } from "./media.ts";

/** Wan 2.1 makes 16 frames a second, plus the first: 81 frames are its 5 seconds. */
const WAN_FPS = 16;
/** A model's video may fall short of the asked length by this much (its last frame's duration) before it is refused. */
const SHORT_TOLERANCE_S = 0.25;
/** Aspect ratios closer than this (as a log ratio, about 1%) are the same: sides of 832 and 480 are not exactly 16:9. */
const ASPECT_TOLERANCE = 0.035;

/**
 * video.generate: the prompt (enhanced first if asked), the catalog's video model (text-to-video,
 * or image-to-video from the start image), then the output checked with ffprobe and re-encoded as
 * the asked length and aspect ratio: an H.264 mp4, moov first, uploaded into storage.
 */
export async function generateVideo(ctx: JobContext<VideoGenerateInput>): Promise<JobOutput> {
  const input = ctx.input;

  const { start, startSize, prompt } = await ctx.stage("prepare", async () => {
    let start: InputFile | undefined;
    let startSize: { width: number; height: number } | undefined;
    if (input.image_file_id) {
      start = await ctx.fetchInput(input.image_file_id);
      const picture = await probe(start.path, { signal: ctx.signal }).catch((err: Error) => {
        if (ctx.signal.aborted) throw err;
        throw new JobFailure("INVALID_MEDIA", "image_file_id is not an image we can read", { cause: err });
      });
      const stream = picture.streams.find((s) => s.type === "video");
      if (!stream?.width || !stream.height) throw new JobFailure("INVALID_MEDIA", "image_file_id is not an image we can read");
      startSize = { width: stream.width, height: stream.height };
    }
    const prompt = input.enhance_prompt ? await enhancePrompt(ctx.models, { prompt: input.prompt, family: input.family, medium: "video" }) : input.prompt;
    return { start, startSize, prompt };
  });
  const frame = generatedVideoFrame(input, startSize);

  const run = await ctx.stage("generate", () =>
    ctx.models.predict({
      jobType: "video.generate",
      quality: input.quality,
      variant: start ? "i2v" : input.family,
      input: {
        prompt,
        aspect_ratio: frame.aspect_ratio,
        num_frames: input.duration_s * WAN_FPS + 1,
        frames_per_second: WAN_FPS,
        ...(input.negative_prompt ? { negative_prompt: input.negative_prompt } : {}),
        ...(input.seed !== undefined ? { seed: input.seed } : {}),
      },
      ...(start ? { files: { image: start } } : {}),
      filename: "generated",
      maxOutputs: 1,
      outputSeconds: input.duration_s,
      progress: [10, 80],
    }),
  );

  const output = join(ctx.tmpDir, "video.mp4");
  const made = await ctx.stage("encode", async () => {
    const download = run.downloads[0]!;
    const info = await probe(download.path, { signal: ctx.signal }).catch((err: Error) => {
      if (ctx.signal.aborted) throw err;
      throw new JobFailure("PROVIDER_ERROR", `${run.model.model} returned something that is not a video`, { cause: err });
    });
    const video = videoStreamOf(info);
    if (!video?.width || !video.height || info.duration === null) throw new JobFailure("PROVIDER_ERROR", `${run.model.model} returned something that is not a video`);
    if (info.duration < input.duration_s - SHORT_TOLERANCE_S) {
      throw new JobFailure("PROVIDER_ERROR", `${run.model.model} made ${info.duration.toFixed(2)} s of video, not the ${input.duration_s} s asked for`);
    }
    await encode(ctx, download.path, info, { width: video.width, height: video.height }, frame, input.duration_s, output);
    const encoded = await probe(output, { signal: ctx.signal });
    const out = videoStreamOf(encoded)!;
    if (Math.abs((encoded.duration ?? 0) - input.duration_s) > 0.1 || Math.abs(Math.log(out.width! / out.height! / (frame.width / frame.height))) > ASPECT_TOLERANCE) {
      throw new Error(`the encoded video is ${encoded.duration} s at ${out.width}x${out.height}, not ${input.duration_s} s at ${frame.aspect_ratio}`);
    }
    return { duration_s: Math.round((encoded.duration ?? 0) * 1000) / 1000, width: out.width, height: out.height, fps: out.fps, codec: out.codec, audio: encoded.streams.some((s) => s.type === "audio") };
  });

  const file = await ctx.stage("upload", () => ctx.uploadOutput(output, "video.mp4", "video/mp4"));
  return {
    files: [file],
    ...made,
    aspect_ratio: frame.aspect_ratio,
    prompt: input.prompt,
    ...(input.enhance_prompt ? { enhanced_prompt: prompt } : {}),
    mode: start ? "image-to-video" : "text-to-video",
    model: run.model.model,
    provider: run.provider,
    ...(ctx.models.runs.length > 1 ? { provider_runs: ctx.models.runs } : {}),
  };
}

/**
 * The model's video as the job promised it: cut to the asked length, centre-cropped to the asked
 * aspect ratio when the model chose another (image-to-video keeps its image's), even sides,
 * H.264 yuv420p with the moov atom first so it plays while it downloads.
 */
async function encode(
  ctx: JobContext<VideoGenerateInput>,
  source: string,
  info: ProbeResult,
  size: { width: number; height: number },
  frame: { width: number; height: number },
  seconds: number,
  output: string,
): Promise<void> {
  const target = frame.width / frame.height;
  const filters: string[] = [];
  if (Math.abs(Math.log(size.width / size.height / target)) > ASPECT_TOLERANCE) {
    filters.push(size.width / size.height > target ? `crop=trunc(ih*${target.toFixed(6)}/2)*2:ih` : `crop=iw:trunc(iw/${target.toFixed(6)}/2)*2`);
  }
  filters.push("scale=trunc(iw/2)*2:trunc(ih/2)*2", "format=yuv420p");
  const hasAudio = info.streams.some((s) => s.type === "audio");
  await runFfmpeg(
    (cmd) => {
      cmd.input(source).videoFilters(filters).outputOptions(["-map", "0:v:0", "-t", String(seconds), "-c:v", "libx264", "-preset", "fast", "-crf", "18", "-movflags", "+faststart"]);
      if (hasAudio) cmd.outputOptions(["-map", "0:a:0", "-c:a", "aac", "-b:a", "192k"]);
      cmd.format("mp4").output(output);
    },
    { signal: ctx.signal, onProgress: (p) => ctx.progress(80 + p * 0.15), durationSec: seconds },
  );
}
