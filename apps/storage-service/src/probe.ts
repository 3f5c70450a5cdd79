import type { FileKind, MediaFacts } from "@cutroom/contracts";
import { probe, type MediaStream } from "@cutroom/worker-runtime/ffmpeg";
import { imageSize } from "image-size";

/** Where a probe reads one stored object. */
export interface ProbeSource {
  /** Up to the first `n` bytes. */
  head(n: number): Promise<Buffer>;
  /** A path or URL ffprobe can read. */
  locate(): Promise<string>;
}

/**
 * Measures a file as it becomes ready: an image's size from its header (no decoding, so a
 * decompression bomb costs nothing here), a video's frame size, length and frame rate and an
 * audio file's length with ffprobe. Undefined for files that are not media; an UnmeasurableMedia
 * when the bytes do not hold the kind of media their type says.
 */
export type MediaProbe = (kind: FileKind, source: ProbeSource) => Promise<MediaFacts | undefined>;

export class UnmeasurableMedia extends Error {
  override name = "UnmeasurableMedia";
}

export const defaultProbeTimeoutMs = 15_000;

// A JPEG's size comes after its EXIF, ICC and XMP segments, which can run to hundreds of kB.
export const imageHeadBytes = 1024 * 1024;
// EXIF orientations 5–8 turn the picture a quarter: it is shown (and resized by the worker) with its sides swapped.
const quarterTurns = new Set([5, 6, 7, 8]);
// Formats ffprobe reads as a video that are really a still image.
const stillFormats = /^(image2|tty|.*_pipe)$/;

export function createMediaProbe({ timeoutMs = defaultProbeTimeoutMs }: { timeoutMs?: number } = {}): MediaProbe {
  return async (kind, source) => {
    if (kind === "image") return measureImage(source, timeoutMs);
    if (kind === "video" || kind === "audio") return measureTimed(kind, source, timeoutMs);
    return undefined;
  };
}

async function measureImage(source: ProbeSource, timeoutMs: number): Promise<MediaFacts> {
  // From the header alone, codecs and alpha are not known (null); an image never has audio.
  const still = (width: number, height: number, stream?: MediaStream): MediaFacts => ({
    width,
    height,
    duration_seconds: null,
    frame_rate: null,
    video_codec: stream?.codec ?? null,
    audio_codec: null,
    has_audio: false,
    has_alpha: stream ? stream.alpha : null,
  });
  try {
    const head = await source.head(imageHeadBytes);
    const size = imageSize(head);
    if (size.width > 0 && size.height > 0) {
      const facts = quarterTurns.has(size.orientation ?? 1) ? still(size.height, size.width) : still(size.width, size.height);
      return { ...facts, has_alpha: pngAlpha(head) };
    }
  } catch {
    // Not a header image-size can read (a TIFF whose directory is at its end, say): ffprobe may.
  }
  const info = await probe(await source.locate(), { timeoutMs }).catch((err: Error) => {
    throw new UnmeasurableMedia(reasonOf(err), { cause: err });
  });
  const picture = info.streams.find((s) => s.type === "video" && s.width && s.height);
  if (!picture) throw new UnmeasurableMedia("its size cannot be read");
  return still(picture.width!, picture.height!, picture);
}

async function measureTimed(kind: "video" | "audio", source: ProbeSource, timeoutMs: number): Promise<MediaFacts> {
  const info = await probe(await source.locate(), { timeoutMs }).catch((err: Error) => {
    throw new UnmeasurableMedia(reasonOf(err), { cause: err });
  });
  const audio = info.streams.find((s) => s.type === "audio");
  if (kind === "video") {
    const video = stillFormats.test(info.format) ? undefined : info.streams.find((s) => s.type === "video" && !s.attached_pic && s.width && s.height);
    if (!video) throw new UnmeasurableMedia("it has no video stream");
    if (info.duration === null) throw new UnmeasurableMedia("its length cannot be measured");
    return { width: video.width, height: video.height, duration_seconds: info.duration, frame_rate: video.fps, video_codec: video.codec, audio_codec: audio?.codec ?? null, has_audio: !!audio, has_alpha: video.alpha };
  }
  if (!audio) throw new UnmeasurableMedia("it has no audio stream");
  if (info.duration === null) throw new UnmeasurableMedia("its length cannot be measured");
  return { width: null, height: null, duration_seconds: info.duration, frame_rate: null, video_codec: null, audio_codec: audio.codec, has_audio: true, has_alpha: null };
}

const pngSignature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Whether a PNG has alpha, from its header: a colour type with alpha (4, 6) or a tRNS chunk before
 * the pictures (IDAT); null for other formats, whose headers are not read for it.
 */
export function pngAlpha(head: Buffer): boolean | null {
  if (head.length < 33 || !head.subarray(0, 8).equals(pngSignature)) return null;
  const colourType = head[25];
  if (colourType === 4 || colourType === 6) return true;
  for (let at = 8; at + 8 <= head.length; ) {
    const length = head.readUInt32BE(at);
    const type = head.toString("latin1", at + 4, at + 8);
    if (type === "tRNS") return true;
    if (type === "IDAT" || type === "IEND") return false;
    at += 12 + length;
  }
  return false;
}

const reasonOf = (err: Error) => (/time limit/.test(err.message) ? "it could not be measured in time" : "ffprobe cannot read it");
