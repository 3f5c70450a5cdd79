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
    download: z
      .object({ url: z.string(), expires_at: Timestamp })
      .optional()
      .describe("with `include=url` on a list: a signed download URL, valid for an hour"),
  })
  .meta({ id: "File" });
export type FileObject = z.infer<typeof FileObject>;

/**
 * Seed 003's output categories. images, videos, audio: output files of that kind that are not final;
 * final: the outputs of a pipeline run's last stage (its `outputs`, set when the run succeeds), such as
 * the composed video of a storyboard.
 */
export const FileCategory = z.enum(["images", "videos", "audio", "final"]);
export type FileCategory = z.infer<typeof FileCategory>;

export const ListFilesQuery = Pagination.extend({
  folder: Folder.optional(),
  kind: FileKind.optional(),
  category: FileCategory.optional().describe(
    "output files only: images, videos or audio (outputs of that kind that are not final), or final (the outputs of a pipeline run's last stage, once the run succeeded)",
  ),
  project_id: Uuid.optional(),
  include: z.enum(["url"]).optional().describe("url: each file carries `download`, a signed URL valid for the default hour"),
});
export type ListFilesQuery = z.infer<typeof ListFilesQuery>;

/** Seed 003's `expires_in`, in seconds: a minute to 7 days (S3 signs a URL for at most 7 days). */
export const downloadUrlSeconds = { min: 60, max: 7 * 24 * 60 * 60, default: 60 * 60 } as const;
export const DownloadUrlQuery = z.object({
  expires_in: z.coerce
    .number()
    .int()
    .min(downloadUrlSeconds.min)
    .max(downloadUrlSeconds.max)
    .default(downloadUrlSeconds.default)
    .describe("seconds the URL stays valid: 60 to 604800 (7 days); 3600 by default"),
});

export const DownloadUrl = z.object({ url: z.string(), expires_at: Timestamp, expires_in: z.number().int().describe("seconds the URL was signed for") });

export const ImportFileBody = z.object({
  url: z.url().max(2048).describe("a public http(s) URL of an image, video or audio file"),
  filename: Filename.optional().describe("the name to keep it under; the URL's last path segment when absent"),
  project_id: Uuid.optional(),
});
export type ImportFileBody = z.infer<typeof ImportFileBody>;

/** An import's failure, as the error envelope would have said it had the fetch run in the request. */
export const ImportError = z.object({
  code: z.string(),
  message: z.string(),
  status: z.number().int().describe("the HTTP status this failure maps to (413 too large, 415 not media, 422 address refused, 502 fetch failed)"),
  details: z.record(z.string(), z.unknown()).optional(),
});

export const FileImport = z
  .object({
    id: Uuid,
    status: z.enum(["running", "succeeded", "failed"]),
    url: z.string(),
    file_id: Uuid.describe("the file it becomes: pending while running, ready once succeeded, rejected if it failed"),
    error: ImportError.nullable(),
    file: FileObject.optional().describe("the file, once succeeded"),
    created_at: Timestamp,
    completed_at: Timestamp.nullable(),
  })
  .meta({ id: "FileImport" });
export type FileImport = z.infer<typeof FileImport>;

export function kindOf(contentType: string): FileKind {
  const top = contentType.split("/")[0];
  return top === "image" || top === "video" || top === "audio" ? top : "other";
}

/**
 * Chunks and tus parts are multipart parts of S3, which must be 5 MiB at least (all but the last);
 * the same bounds on fs keep a client's settings valid whatever the driver.
 */
export const uploadChunkBytes = { min: 5 * 1024 ** 2, max: 512 * 1024 ** 2 } as const;
/** S3's most parts in one multipart upload. */
export const maxUploadChunks = 10_000;

export const Sha256Hex = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, "must be a SHA-256 as 64 hex digits")
  .transform((s) => s.toLowerCase());

/** Seed 004's `POST chunked-upload/init`. */
export const InitChunkedUploadBody = z.object({
  filename: Filename,
  total_size: z.number().int().positive().describe("the whole file's exact size in bytes"),
  chunk_size: z
    .number()
    .int()
    .min(uploadChunkBytes.min)
    .max(uploadChunkBytes.max)
    .describe("every chunk's size but the last (which is the rest); 5 MiB to 512 MiB"),
  file_type: ContentType.describe("the file's media type; checked against its bytes at complete, as a signed upload's confirm does"),
  sha256: Sha256Hex.optional().describe("the whole file's SHA-256, checked at complete"),
  project_id: Uuid.optional(),
});
export type InitChunkedUploadBody = z.infer<typeof InitChunkedUploadBody>;

export const ChunkedUploadTicket = z.object({ upload_id: Uuid, chunk_count: z.number().int(), expires_at: Timestamp });

export const ChunkReceipt = z.object({
  upload_id: Uuid,
  chunk_index: z.number().int(),
  chunks_received: z.number().int(),
  chunks_total: z.number().int(),
});

/** Where an upload stands, so a client that crashed sends only what is missing. */
export const ResumableUpload = z
  .object({
    upload_id: Uuid,
    protocol: z.enum(["chunked", "tus"]),
    status: z.enum(["open", "completing", "completed", "failed", "terminated"]),
    filename: z.string(),
    file_type: z.string(),
    total_size: z.number().int(),
    chunk_size: z.number().int(),
    chunk_count: z.number().int(),
    chunks_received: z.number().int(),
    received: z.array(z.number().int()).describe("indexes of the chunks stored (tus: whole parts)"),
    missing: z.array(z.number().int()).describe("indexes still to send"),
    offset: z.number().int().describe("tus: bytes stored so far"),
    file_id: Uuid.describe("the file this upload becomes; ready once completed"),
    expires_at: Timestamp,
    created_at: Timestamp,
  })
  .meta({ id: "ResumableUpload" });
export type ResumableUpload = z.infer<typeof ResumableUpload>;

export const CompleteChunkedUploadBody = z.object({ sha256: Sha256Hex.optional().describe("the whole file's SHA-256, when not given at init") }).default({});

/** Seed 004's answer to `POST chunked-upload/complete/{upload_id}`. */
export const CompletedUpload = z.object({
  file_id: Uuid,
  filename: z.string(),
  file_size: z.number().int(),
  file_url: z.string().describe("a signed download URL, valid for 15 minutes"),
  file: FileObject,
});
export type CompletedUpload = z.infer<typeof CompletedUpload>;
