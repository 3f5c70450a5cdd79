import { bigint, boolean, doublePrecision, index, integer, jsonb, pgSchema, text, timestamp, uuid } from "drizzle-orm/pg-core";

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
  ],
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
