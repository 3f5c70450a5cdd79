import { z } from "zod";
import { Uuid } from "./common.ts";

const seconds = z.number().min(0).max(24 * 3600);

/** A box in the video's pixels, from its top-left corner. */
export const PixelBox = z.object({
  x: z.number().int().min(0).max(16384),
  y: z.number().int().min(0).max(16384),
  width: z.number().int().min(1).max(16384),
  height: z.number().int().min(1).max(16384),
});
export type PixelBox = z.infer<typeof PixelBox>;

/** Seed 004's GhostCut annotation: a box over a time range, erased or protected from erasure. */
export const EraseRegion = z
  .object({
    start_time: seconds.describe("seconds into the video"),
    end_time: seconds.describe("after start_time"),
    bbox: PixelBox,
    type: z.enum(["erasure", "protection"]).default("erasure").describe("protection: never erased, whatever erasure box covers it"),
  })
  .refine((r) => r.end_time > r.start_time, { message: "end_time must be after start_time", path: ["end_time"] });
export type EraseRegion = z.output<typeof EraseRegion>;

/** How frames are sampled and which words count, for text detection (alone or before an erasure). */
const detectionFields = {
  sample_fps: z.number().min(0.1).max(10).default(2).describe("frames read per second of video"),
  min_confidence: z.number().min(0).max(100).default(60).describe("words tesseract is less sure of (0–100) are ignored"),
};

export const VideoDetectTextInput = z.object({ file_id: Uuid, ...detectionFields });
export type VideoDetectTextInput = z.output<typeof VideoDetectTextInput>;

export const EraseMethod = z.enum(["delogo", "blur", "inpaint"]);
export type EraseMethod = z.infer<typeof EraseMethod>;

export const VideoEraseInput = z
  .object({
    file_id: Uuid,
    regions: z.array(EraseRegion).max(200).default([]),
    auto_detect: z.boolean().optional().describe("find burnt-in text with OCR and erase it too; true by default when no erasure region is given"),
    method: EraseMethod.default("delogo").describe(
      "delogo: ffmpeg's delogo interpolates each box from its edges; blur: a box blur of the box; inpaint: delogo, then a soft Gaussian blur over the box to hide its seams (interpolation, not a learned inpainting model)",
    ),
    ...detectionFields,
  })
  .refine((v) => v.auto_detect !== false || v.regions.some((r) => r.type === "erasure"), {
    message: "nothing to erase: give an erasure region or leave auto_detect on",
    path: ["regions"],
  });
export type VideoEraseInput = z.output<typeof VideoEraseInput>;

/** Whether an erase input detects text: asked, or by default when it names no erasure region. */
export const eraseDetects = (input: Pick<VideoEraseInput, "auto_detect" | "regions">) => input.auto_detect ?? !input.regions.some((r) => r.type === "erasure");

export const VideoFormat = z.enum(["mp4", "webm", "mov"]);
export type VideoFormat = z.infer<typeof VideoFormat>;
export const VideoCodec = z.enum(["h264", "h265", "vp9", "prores"]);
export type VideoCodec = z.infer<typeof VideoCodec>;

/** The codecs each container takes, the first its default. */
export const containerCodecs: Record<VideoFormat, readonly VideoCodec[]> = {
  mp4: ["h264", "h265", "vp9"],
  webm: ["vp9"],
  mov: ["h264", "h265", "prores"],
};

export const VideoTranscodeInput = z
  .object({
    file_id: Uuid,
    format: VideoFormat.default("mp4"),
    codec: VideoCodec.optional().describe("mp4: h264 (default), h265, vp9; webm: vp9; mov: h264 (default), h265, prores"),
    max_width: z.number().int().min(16).max(16384).optional().describe("scaled down to fit, aspect kept, sides even; never scaled up"),
    max_height: z.number().int().min(16).max(16384).optional(),
    fps: z.number().min(1).max(120).optional().describe("the source's rate when absent"),
    crf: z.number().int().min(0).max(63).optional().describe("constant quality: h264/h265 0–51, vp9 0–63, lower is better; not with bitrate or prores"),
    bitrate_kbps: z.number().int().min(50).max(200_000).optional().describe("average video bitrate instead of crf; not with prores"),
    audio: z.boolean().default(true).describe("keep the sound (AAC, or Opus in webm); false drops it"),
  })
  .refine((v) => !v.codec || containerCodecs[v.format].includes(v.codec), {
    message: "this container cannot hold this codec (mp4: h264, h265, vp9; webm: vp9; mov: h264, h265, prores)",
    path: ["codec"],
  })
  .refine((v) => v.crf === undefined || v.bitrate_kbps === undefined, { message: "give crf or bitrate_kbps, not both", path: ["crf"] })
  .refine((v) => v.codec !== "prores" || (v.crf === undefined && v.bitrate_kbps === undefined), { message: "prores takes no crf or bitrate", path: ["codec"] })
  .refine((v) => v.crf === undefined || v.crf <= 51 || (v.codec ?? containerCodecs[v.format][0]) === "vp9", { message: "crf goes up to 51 for h264 and h265", path: ["crf"] });
export type VideoTranscodeInput = z.output<typeof VideoTranscodeInput>;

/** The codec a transcode writes: the one asked, else the container's default. */
export const transcodeCodec = (input: Pick<VideoTranscodeInput, "format" | "codec">): VideoCodec => input.codec ?? containerCodecs[input.format][0]!;

const even = (n: number) => Math.max(2, 2 * Math.round(n / 2));

/** The frame a video is scaled to so it fits `max` (aspect kept, never enlarged), with even sides as 4:2:0 and 4:2:2 need. */
export function fitFrame(src: { width: number; height: number }, max: { width?: number; height?: number }): { width: number; height: number } {
  const scale = Math.min(1, max.width ? max.width / src.width : 1, max.height ? max.height / src.height : 1);
  // Rounded down to even, so the frame never passes a bound nor the source.
  const evenDown = (n: number) => Math.max(2, 2 * Math.floor((n * scale + 1e-9) / 2));
  return { width: evenDown(src.width), height: evenDown(src.height) };
}

export const ThumbnailFormat = z.enum(["jpeg", "png", "webp"]);
export type ThumbnailFormat = z.infer<typeof ThumbnailFormat>;

export const VideoThumbnailsInput = z
  .object({
    file_id: Uuid,
    mode: z.enum(["single", "evenly_spaced", "contact_sheet"]).default("single").describe("single: one image at `time`; evenly_spaced: `count` images; contact_sheet: `count` frames tiled in `columns`"),
    time: seconds.optional().describe("single: seconds into the video; the middle when absent"),
    count: z.number().int().min(1).max(100).default(9).describe("evenly_spaced and contact_sheet: how many frames, one from the middle of each equal part of the video"),
    columns: z.number().int().min(1).max(20).default(3).describe("contact_sheet: frames per row"),
    width: z.number().int().min(16).max(4096).optional().describe("each image's (each tile's) width, aspect kept; the source's, or 320 for a sheet's tiles, when absent"),
    format: ThumbnailFormat.default("jpeg"),
    quality: z.number().int().min(1).max(100).default(85),
  })
  .refine((v) => v.mode === "single" || v.time === undefined, { message: "time is for mode single", path: ["time"] });
export type VideoThumbnailsInput = z.output<typeof VideoThumbnailsInput>;

/** The size of each image (each tile) a thumbnails input makes of a `src` frame. */
export function thumbnailSize(input: Pick<VideoThumbnailsInput, "mode" | "width">, src: { width: number; height: number }): { width: number; height: number } {
  const width = input.width ?? (input.mode === "contact_sheet" ? Math.min(320, src.width) : src.width);
  return { width: even(width), height: even((src.height * width) / src.width) };
}

/** The moments a thumbnails input picks from a video of `duration` seconds. */
export function thumbnailTimes(input: Pick<VideoThumbnailsInput, "mode" | "time" | "count">, duration: number): number[] {
  if (input.mode === "single") return [input.time ?? duration / 2];
  return Array.from({ length: input.count }, (_v, i) => Math.round(((duration * (i + 0.5)) / input.count) * 1000) / 1000);
}
