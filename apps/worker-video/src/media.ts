import { basename, extname } from "node:path";
import type { ProbeResult } from "@cutroom/worker-runtime/ffmpeg";

// Formats ffprobe reads as a "video" that is really a still image or a text file.
const stillFormats = /^(image2|tty|.*_pipe)$/;

/** The moving-picture stream of a probed file: none for stills, cover art or files without video. */
export function videoStreamOf(info: ProbeResult) {
  if (stillFormats.test(info.format)) return undefined;
  return info.streams.find((s) => s.type === "video" && !s.attached_pic);
}

/** A file's name without its extension, for naming what a job makes of it. */
export const stem = (filename: string, fallback: string) => basename(filename, extname(filename)) || fallback;
