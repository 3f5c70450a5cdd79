import { sql } from "drizzle-orm";
import { bigint, boolean, doublePrecision, index, integer, jsonb, pgSchema, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";

export const storage = pgSchema("storage");

export const files = storage.table(
  "files",
  {
    id: uuid("id").primaryKey(),
    ownerId: uuid("owner_id").notNull(),
    projectId: uuid("project_id"),
    jobId: uuid("job_id"),
    folder: text("folder", { enum: ["input", "output"] }).notNull(),
    filename: text("filename").notNull(),
    contentType: text("content_type").notNull(),
    declaredSize: bigint("declared_size", { mode: "number" }),
    size: bigint("size", { mode: "number" }).notNull().default(0),
    // "receiving": a PUT or a confirm has claimed the row (its bytes are arriving or being checked); "uploaded": the
    // one signed PUT a ticket allows is done and confirm is awaited. Both are shown to clients as pending.
    status: text("status", { enum: ["pending", "receiving", "uploaded", "ready", "rejected"] }).notNull().default("pending"),
    storageKey: text("storage_key").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    confirmedAt: timestamp("confirmed_at", { withTimezone: true }),
    // Media facts, measured when the file became ready; null where they do not apply or for files stored before.
    width: integer("width"),
    height: integer("height"),
    durationSeconds: doublePrecision("duration_seconds"),
    frameRate: doublePrecision("frame_rate"),
    videoCodec: text("video_codec"),
    audioCodec: text("audio_codec"),
    hasAudio: boolean("has_audio"),
    hasAlpha: boolean("has_alpha"),
  },
  (t) => [
    index("files_owner_idx").on(t.ownerId, t.folder, t.createdAt),
    index("files_project_idx").on(t.projectId, t.createdAt),
    // The sweep's signed-URL tickets never confirmed: the few inputs still waiting, not every file stored.
    index("files_unconfirmed_idx").on(t.createdAt).where(sql`folder = 'input' and status in ('pending', 'uploaded')`),
  ],
);

/** A row of storage.files, as Drizzle's queries answer it. */
export type FileRow = typeof files.$inferSelect;

/** A file's media facts as plain SQL answers them: the columns carry the contracts' MediaFacts names. */
export type FileMediaColumns = {
  width: number | null;
  height: number | null;
  duration_seconds: number | null;
  frame_rate: number | null;
  video_codec: string | null;
  audio_codec: string | null;
  has_audio: boolean | null;
  has_alpha: boolean | null;
};

/** A row of storage.files as plain SQL answers it (postgres.js under Drizzle's parsers): snake_case, int8 and timestamps as text. */
export type FileSqlRow = FileMediaColumns & {
  id: string;
  owner_id: string;
  project_id: string | null;
  job_id: string | null;
  folder: FileRow["folder"];
  filename: string;
  content_type: string;
  declared_size: string | null;
  size: string;
  status: FileRow["status"];
  storage_key: string;
  created_at: string;
  confirmed_at: string | null;
};

/** A row from plain SQL (the hot paths' statements) as Drizzle's queries would have answered it. */
export function fileRowOf(r: FileSqlRow): FileRow {
  return {
    id: r.id,
    ownerId: r.owner_id,
    projectId: r.project_id,
    jobId: r.job_id,
    folder: r.folder,
    filename: r.filename,
    contentType: r.content_type,
    declaredSize: r.declared_size === null ? null : Number(r.declared_size),
    size: Number(r.size),
    status: r.status,
    storageKey: r.storage_key,
    createdAt: new Date(r.created_at),
    confirmedAt: r.confirmed_at === null ? null : new Date(r.confirmed_at),
    width: r.width,
    height: r.height,
    durationSeconds: r.duration_seconds,
    frameRate: r.frame_rate,
    videoCodec: r.video_codec,
    audioCodec: r.audio_codec,
    hasAudio: r.has_audio,
    hasAlpha: r.has_alpha,
  };
}

/**
 * A resumable upload (seed 004's chunked upload, or tus): its bytes go to a multipart upload of the
 * driver (S3's own, or a part directory on fs) until complete makes them the file `file_id`.
 */
export const uploads = storage.table(
  "uploads",
  {
    id: uuid("id").primaryKey(),
    ownerId: uuid("owner_id").notNull(),
    fileId: uuid("file_id").notNull(),
    protocol: text("protocol", { enum: ["chunked", "tus"] }).notNull(),
    totalSize: bigint("total_size", { mode: "number" }).notNull(),
    // chunked: the client's chunk size; tus: the size of the parts its PATCH bodies are cut into.
    chunkSize: integer("chunk_size").notNull(),
    chunkCount: integer("chunk_count").notNull(),
    sha256: text("sha256"),
    multipartId: text("multipart_id").notNull(),
    // open → completing → completed; failed when the bytes were refused; terminated by a tus DELETE.
    status: text("status", { enum: ["open", "completing", "completed", "failed", "terminated"] }).notNull().default("open"),
    // tus: bytes stored so far (whole parts, then the tail: the bytes short of a part, kept as an object of their own).
    offset: bigint("offset", { mode: "number" }).notNull().default(0),
    tailKey: text("tail_key"),
    tailSize: integer("tail_size").notNull().default(0),
    // tus: one PATCH at a time; a lease rather than a flag, so a storage-service that died mid-PATCH does not block it forever.
    lockedUntil: timestamp("locked_until", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
  },
  (t) => [index("uploads_expires_idx").on(t.expiresAt)],
);

/** The parts stored of an upload: a chunk (index = chunk_index) or a tus part; re-sending one replaces it. */
export const uploadParts = storage.table(
  "upload_parts",
  {
    uploadId: uuid("upload_id")
      .notNull()
      .references(() => uploads.id, { onDelete: "cascade" }),
    partIndex: integer("part_index").notNull(),
    // The driver's part holding it: two per index taken in turn, so a resend never overwrites the part recorded (ADR 030).
    partNumber: integer("part_number").notNull(),
    size: integer("size").notNull(),
    etag: text("etag").notNull(),
  },
  (t) => [primaryKey({ columns: [t.uploadId, t.partIndex] })],
);

/**
 * A file fetched from a URL (POST /files/import). The fetch runs in storage-service after the answer;
 * the row tells the client how it went. One still running past `deadline_at` was cut off by a restart.
 */
export const imports = storage.table(
  "imports",
  {
    id: uuid("id").primaryKey(),
    ownerId: uuid("owner_id").notNull(),
    fileId: uuid("file_id").notNull(),
    url: text("url").notNull(),
    status: text("status", { enum: ["running", "succeeded", "failed"] }).notNull().default("running"),
    error: jsonb("error").$type<{ code: string; message: string; status: number; details?: Record<string, unknown> }>(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    deadlineAt: timestamp("deadline_at", { withTimezone: true }).notNull(),
    completedAt: timestamp("completed_at", { withTimezone: true }),
  },
  (t) => [index("imports_owner_idx").on(t.ownerId, t.createdAt)],
);
