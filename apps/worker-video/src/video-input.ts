import type { JobLimits } from "@cutroom/contracts";
import { checkLimits, JobFailure } from "@cutroom/worker-runtime";
import { probe, type MediaStream } from "@cutroom/worker-runtime/ffmpeg";
import { videoStreamOf } from "./media.ts";

export interface MeasuredVideo {
  frame: { width: number; height: number };
  duration: number;
  fps: number;
  video: MediaStream;
  audio: MediaStream | undefined;
}

/**
 * Probes a fetched video and holds it to the job's limits (reading it whole) before any heavy work:
 * INVALID_MEDIA when it is not a video with a known length, LIMIT_EXCEEDED past the tier's bounds.
 */
export async function measureVideo(path: string, limits: JobLimits, signal: AbortSignal, outputPixels?: number): Promise<MeasuredVideo> {
  const info = await probe(path, { signal }).catch((err: Error) => {
    if (signal.aborted) throw err;
    throw new JobFailure("INVALID_MEDIA", "the input is not a readable video file", { cause: err });
  });
  const video = videoStreamOf(info);
  if (!video?.width || !video.height) throw new JobFailure("INVALID_MEDIA", "the input has no video stream");
  if (info.duration === null || info.duration <= 0) throw new JobFailure("INVALID_MEDIA", "the video's length cannot be measured");
  const pixels = video.width * video.height;
  checkLimits(limits, { input_pixels: pixels, output_pixels: outputPixels ?? pixels, media_seconds: info.duration });
  return {
    frame: { width: video.width, height: video.height },
    duration: info.duration,
    fps: video.fps ?? 25,
    video,
    audio: info.streams.find((s) => s.type === "audio"),
  };
}
