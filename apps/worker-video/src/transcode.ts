import { join } from "node:path";
import { fitFrame, transcodeCodec, type VideoFormat, type VideoTranscodeInput } from "@cutroom/contracts";
import { outputFacts, type JobContext, type JobOutput } from "@cutroom/worker-runtime";
import { runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { stem } from "./media.ts";
import { measureVideo } from "./video-input.ts";

export const transcodeOutputs: Record<VideoFormat, { ext: string; contentType: string; muxer: string }> = {
  mp4: { ext: "mp4", contentType: "video/mp4", muxer: "mp4" },
  webm: { ext: "webm", contentType: "video/webm", muxer: "webm" },
  mov: { ext: "mov", contentType: "video/quicktime", muxer: "mov" },
};

/** What each codec is asked for: encoder, default crf, pixel format and its own settings. */
const encoders = {
  h264: { encoder: "libx264", crf: 23, pixFmt: "yuv420p", extra: ["-preset", "fast"] },
  // hvc1: the tag Apple's players need to open H.265 in mp4 and mov.
  h265: { encoder: "libx265", crf: 28, pixFmt: "yuv420p", extra: ["-preset", "fast", "-tag:v", "hvc1", "-x265-params", "log-level=error"] },
  // cpu-used 4 with row-mt: libvpx's "good" quality at a speed near x264's fast preset.
  vp9: { encoder: "libvpx-vp9", crf: 32, pixFmt: "yuv420p", extra: ["-deadline", "good", "-cpu-used", "4", "-row-mt", "1"] },
  // ProRes 422 (profile 2), 10-bit, as editors expect.
  prores: { encoder: "prores_ks", crf: undefined, pixFmt: "yuv422p10le", extra: ["-profile:v", "2", "-vendor", "apl0"] },
} as const;

/**
 * The ffmpeg command (without `ffmpeg`) of a transcode of a `src` video: scaled to fit the maximum
 * size, at the asked fps, by the codec's encoder at crf or bitrate, the sound as AAC (Opus in webm)
 * or dropped.
 */
export function transcodeFfmpegArgs(input: VideoTranscodeInput, src: { width: number; height: number; hasAudio: boolean }, inputPath: string, outputPath: string): string[] {
  const codec = transcodeCodec(input);
  const enc = encoders[codec];
  const out = fitFrame(src, { width: input.max_width, height: input.max_height });
  const filters = [`scale=${out.width}:${out.height}`, ...(input.fps ? [`fps=${input.fps}`] : []), `format=${enc.pixFmt}`];
  const rate =
    input.bitrate_kbps !== undefined ? ["-b:v", `${input.bitrate_kbps}k`] : enc.crf === undefined ? [] : ["-crf", String(input.crf ?? enc.crf), ...(codec === "vp9" ? ["-b:v", "0"] : [])];
  const keepAudio = input.audio && src.hasAudio;
  const audio = keepAudio ? ["-map", "0:a:0", ...(input.format === "webm" ? ["-c:a", "libopus", "-b:a", "128k"] : ["-c:a", "aac", "-b:a", "192k"])] : ["-an"];
  const mux = transcodeOutputs[input.format];
  return [
    "-v", "error", "-i", inputPath, "-map", "0:v:0", ...audio,
    "-vf", filters.join(","), "-c:v", enc.encoder, ...enc.extra, ...rate,
    ...(input.format === "webm" ? [] : ["-movflags", "+faststart"]),
    "-f", mux.muxer, "-y", outputPath,
  ];
}

/** video.transcode: another container, codec, size, rate or quality; the sound kept or dropped. */
export async function transcodeHandler(ctx: JobContext<VideoTranscodeInput>): Promise<JobOutput> {
  const { input } = ctx;
  const { source, measured } = await ctx.stage("fetch", async () => {
    const source = await ctx.fetchInput(input.file_id);
    return { source, measured: await measureVideo(source, ctx.limits, ctx.signal) };
  });
  const mux = transcodeOutputs[input.format];
  const outputPath = join(ctx.tmpDir, `transcoded.${mux.ext}`);
  await ctx.stage("transcode", async () => {
    const args = transcodeFfmpegArgs(input, { ...measured.frame, hasAudio: measured.audio !== undefined }, source.path, outputPath);
    await runFfmpegArgs(args, { signal: ctx.signal, durationSec: measured.duration, onProgress: (p) => ctx.progress(5 + p * 0.9) });
  });
  const file = await ctx.stage("upload", () => ctx.uploadOutput(outputPath, `${stem(source.filename, "video")}-${transcodeCodec(input)}.${mux.ext}`, mux.contentType));
  return { files: [file], format: input.format, ...outputFacts(file) };
}
