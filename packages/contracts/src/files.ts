import { z } from "zod";
import { Pagination, Timestamp, Uuid } from "./common.ts";

export const Folder = z.enum(["input", "output"]);
export type Folder = z.infer<typeof Folder>;
export const FileStatus = z.enum(["pending", "ready", "rejected"]);
export const FileKind = z.enum(["image", "video", "audio", "other"]);
export type FileKind = z.infer<typeof FileKind>;

// RFC 6838 bounds a type and a subtype at 127 characters each; a longer one is garbage, not a type.
export const ContentType = z
  .string()
  .max(255)
  .regex(/^[a-z]+\/[a-z0-9][a-z0-9.+-]*$/i, "must be a MIME type such as video/mp4")
  .transform((s) => s.toLowerCase());
export const Filename = z
  .string()
  .trim()
  .min(1)
  .max(255)
  .refine((s) => !/[/\\\0]/.test(s), "must not contain slashes or NUL");

export const CreateUploadBody = z.object({
  filename: Filename,
  content_type: ContentType,
  size: z.number().int().positive().describe("exact size in bytes"),
  project_id: Uuid.optional(),
});
export type CreateUploadBody = z.infer<typeof CreateUploadBody>;

export const UploadTicket = z.object({
  file_id: Uuid,
  upload_url: z.string(),
  method: z.literal("PUT"),
  headers: z.record(z.string(), z.string()),
  expires_at: Timestamp,
});
export type UploadTicket = z.infer<typeof UploadTicket>;

/**
 * What storage measured of a media file when it became ready (image dimensions from the header,
 * video and audio with ffprobe); a field is null where it does not apply (an image has no duration).
 * Job types size their work, and so their limits and credits, from these.
 */
export const MediaFacts = z
  .object({
    width: z.number().int().positive().nullable().describe("pixels, as displayed (EXIF orientation applied); a video's frame"),
    height: z.number().int().positive().nullable(),
    duration_seconds: z.number().nonnegative().nullable(),
    frame_rate: z.number().positive().nullable().describe("a video's frames per second"),
    // Optional in the type: files measured before these were recorded have none (shown as null).
    video_codec: z.string().nullable().optional().describe("ffprobe's name of the video codec (h264, vp9, prores…); null for audio and images measured from their header"),
    audio_codec: z.string().nullable().optional().describe("ffprobe's name of the first audio stream's codec (aac, pcm_s16le, opus…); null without audio"),
    has_audio: z.boolean().nullable().optional().describe("the file carries an audio stream; null where not measured"),
    has_alpha: z.boolean().nullable().optional().describe("the pictures carry an alpha channel (PNG with transparency, ProRes 4444, VP9 alpha); null where not measured"),
  })
  .meta({ id: "MediaFacts" });
export type MediaFacts = z.infer<typeof MediaFacts>;

/** The same facts under the names of seed 000's asset metadata: `duration` and `fps`. */
export const FileMetadata = z
  .object({
    duration: z.number().nonnegative().nullable().describe("seconds"),
    width: z.number().int().positive().nullable(),
    height: z.number().int().positive().nullable(),
    fps: z.number().positive().nullable(),
    video_codec: z.string().nullable(),
    audio_codec: z.string().nullable(),
    has_audio: z.boolean().nullable(),
    has_alpha: z.boolean().nullable(),
  })
  .meta({ id: "FileMetadata" });
export type FileMetadata = z.infer<typeof FileMetadata>;

export const toFileMetadata = (m: MediaFacts): FileMetadata => ({
  duration: m.duration_seconds,
  width: m.width,
  height: m.height,
  fps: m.frame_rate,
  video_codec: m.video_codec ?? null,
  audio_codec: m.audio_codec ?? null,
  has_audio: m.has_audio ?? null,
  has_alpha: m.has_alpha ?? null,
});

export const FileObject = z
  .object({
    id: Uuid,
    filename: z.string(),
    content_type: z.string(),
    kind: FileKind,
    size: z.number().int(),
    folder: Folder,
    status: FileStatus,
    project_id: Uuid.nullable(),
    job_id: Uuid.nullable(),
    created_at: Timestamp,
    media: MediaFacts.optional().describe("measured image, video or audio facts; absent for other files and for files stored before they were measured"),
    metadata: FileMetadata.optional().describe("the same facts as `media`, named as seed 000's asset metadata (duration, fps)"),
  })
  .meta({ id: "File" });
export type FileObject = z.infer<typeof FileObject>;

export const ListFilesQuery = Pagination.extend({
  folder: Folder.optional(),
  kind: FileKind.optional(),
  project_id: Uuid.optional(),
});
export type ListFilesQuery = z.infer<typeof ListFilesQuery>;

export const DownloadUrl = z.object({ url: z.string(), expires_at: Timestamp });

export function kindOf(contentType: string): FileKind {
  const top = contentType.split("/")[0];
  return top === "image" || top === "video" || top === "audio" ? top : "other";
}
