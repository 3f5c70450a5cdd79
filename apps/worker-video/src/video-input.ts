import type { JobLimits, MediaFacts } from "@cutroom/contracts";
import { checkLimits, JobFailure, type InputFile } from "@cutroom/worker-runtime";
import { probe } from "@cutroom/worker-runtime/ffmpeg";
import { videoStreamOf } from "./media.ts";

export interface MeasuredVideo {
  frame: { width: number; height: number };
  duration: number;
  fps: number;
  /** The first audio stream (its codec null when ffprobe cannot name it); undefined: the video has no sound. */
  audio: { codec: string | null } | undefined;
}

/**
 * Measures a fetched video and holds it to the job's limits before any heavy work: INVALID_MEDIA when
 * it is not a video with a known length, LIMIT_EXCEEDED past the tier's bounds. What storage measured
 * when it stored the file is taken when it says all of that (ADR 058); else the file is probed here.
 */
export async function measureVideo(input: Pick<InputFile, "path" | "media">, limits: JobLimits, signal?: AbortSignal, outputPixels?: number): Promise<MeasuredVideo> {
  const measured = fromStorage(input.media) ?? (await probeVideo(input.path, signal));
  const pixels = measured.frame.width * measured.frame.height;
  checkLimits(limits, { input_pixels: pixels, output_pixels: outputPixels ?? pixels, media_seconds: measured.duration });
  return measured;
}

/**
 * Storage's facts, when they describe a video whole: its frame, its length, whether it has sound and in
 * what codec (recorded together; a file measured before they were has has_audio null, and is probed).
 */
function fromStorage(media: MediaFacts | undefined): MeasuredVideo | undefined {
  if (!media?.width || !media.height || !media.duration_seconds || typeof media.has_audio !== "boolean") return undefined;
  return {
    frame: { width: media.width, height: media.height },
    duration: media.duration_seconds,
    fps: media.frame_rate ?? 25,
    audio: media.has_audio ? { codec: media.audio_codec ?? null } : undefined,
  };
}

async function probeVideo(path: string, signal?: AbortSignal): Promise<MeasuredVideo> {
  const info = await probe(path, signal ? { signal } : {}).catch((err: Error) => {
    if (signal?.aborted) throw err;
    throw new JobFailure("INVALID_MEDIA", "the input is not a readable video file", { cause: err });
  });
  const video = videoStreamOf(info);
  if (!video?.width || !video.height) throw new JobFailure("INVALID_MEDIA", "the input has no video stream");
  if (info.duration === null || info.duration <= 0) throw new JobFailure("INVALID_MEDIA", "the video's length cannot be measured");
  const audio = info.streams.find((s) => s.type === "audio");
  return { frame: { width: video.width, height: video.height }, duration: info.duration, fps: video.fps ?? 25, audio: audio ? { codec: audio.codec } : undefined };
}
