import { z } from "zod";
import { Pagination, Timestamp, Uuid } from "./common.ts";

export const Folder = z.enum(["input", "output"]);
export type Folder = z.infer<typeof Folder>;
export const FileStatus = z.enum(["pending", "ready", "rejected"]);
export const FileKind = z.enum(["image", "video", "audio", "other"]);
export type FileKind = z.infer<typeof FileKind>;

export const ContentType = z
  .string()
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
