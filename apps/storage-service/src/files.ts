import { kindOf, toFileMetadata, type FileCategory, type FileKind, type FileObject, type Folder, type MediaFacts } from "@cutroom/contracts";
import { and, asc, clientOf, count, desc, eq, inArray, sqlTag as sql, type Db, type DbOptions } from "@cutroom/db";
import { fileRowOf, files, type FileRow, type FileSqlRow } from "@cutroom/db/storage";

export type { FileRow };

/**
 * storage-service's pool: every statement plans with the table as it is (ADR 055). Its statements find
 * rows by key, and `storage.files` gains a row per job output: a plan made while the table was nearly
 * empty read it whole at every job's lookups until the next analyze.
 */
export const storageDbOptions: DbOptions = { plans: "custom" };

export const storageKey = (ownerId: string, fileId: string) => `${ownerId}/${fileId}`;
/** The file a storage key belongs to (its last part), to find the row by primary key. */
const fileIdOfKey = (key: string) => key.slice(key.lastIndexOf("/") + 1);

export async function insertPendingFile(
  db: Db,
  f: { id: string; ownerId: string; projectId?: string; folder: Folder; filename: string; contentType: string; declaredSize?: number },
): Promise<FileRow> {
  const [row] = await db
    .insert(files)
    .values({ ...f, projectId: f.projectId ?? null, declaredSize: f.declaredSize ?? null, storageKey: storageKey(f.ownerId, f.id) })
    .returning();
  return row!;
}

type OutputFile = { id: string; ownerId: string; jobId: string; projectId: string | null; filename: string; contentType: string };

/**
 * A job's output row: the same (job, filename) always lands on the same row. `pending` for bytes still
 * to come (createOutput); `ready` for bytes stored already, with their size and measurements, in one
 * statement (the output PUT, ADR 061). Either way a re-run's row forgets the last run's measurements
 * (ADR 056). Another user's row is left alone: undefined.
 */
export async function putOutputFile(
  db: Db,
  f: OutputFile,
  state: { status: "pending" } | { status: "ready"; size: number; media: MediaFacts | undefined },
): Promise<FileRow | undefined> {
  const ready = state.status === "ready" ? state : undefined;
  const m = ready?.media;
  // Plain SQL on the worker's path: Drizzle's query building cost more CPU than the statement (ADR 033).
  const [row] = await clientOf(db)<FileSqlRow[]>`
    insert into storage.files (id, owner_id, project_id, job_id, folder, filename, content_type, storage_key, status, size, confirmed_at,
      width, height, duration_seconds, frame_rate, video_codec, audio_codec, has_audio, has_alpha)
    values (${f.id}, ${f.ownerId}, ${f.projectId}, ${f.jobId}, 'output', ${f.filename}, ${f.contentType}, ${storageKey(f.ownerId, f.id)}, ${state.status},
      ${ready?.size ?? 0}, case when ${ready !== undefined} then now() end, ${m?.width ?? null}, ${m?.height ?? null}, ${m?.duration_seconds ?? null}, ${m?.frame_rate ?? null},
      ${m?.video_codec ?? null}, ${m?.audio_codec ?? null}, ${m?.has_audio ?? null}, ${m?.has_alpha ?? null})
    on conflict (id) do update set content_type = excluded.content_type, status = excluded.status, size = excluded.size, confirmed_at = excluded.confirmed_at,
      width = excluded.width, height = excluded.height, duration_seconds = excluded.duration_seconds, frame_rate = excluded.frame_rate,
      video_codec = excluded.video_codec, audio_codec = excluded.audio_codec, has_audio = excluded.has_audio, has_alpha = excluded.has_alpha
    where storage.files.owner_id = excluded.owner_id
    returning *`;
  return row && fileRowOf(row);
}

export async function getFileRow(db: Db, id: string): Promise<FileRow | undefined> {
  const [row] = await clientOf(db)<FileSqlRow[]>`select * from storage.files where id = ${id}`;
  return row && fileRowOf(row);
}

/** The file when `ownerId` owns it; another user's file is simply not there. */
export async function getOwnedFile(db: Db, ownerId: string, id: string): Promise<FileRow | undefined> {
  const [row] = await clientOf(db)<FileSqlRow[]>`select * from storage.files where id = ${id} and owner_id = ${ownerId}`;
  return row && fileRowOf(row);
}

/** The owner's ready files among `ids` (a job's inputs); another user's, or one not ready, is not there. */
export async function getReadyFiles(db: Db, ownerId: string, ids: readonly string[]): Promise<FileRow[]> {
  const rows = await clientOf(db)<FileSqlRow[]>`
    select * from storage.files where id = any(${ids as string[]}::uuid[]) and owner_id = ${ownerId} and status = 'ready'`;
  return rows.map(fileRowOf);
}

export async function listReadyFiles(
  db: Db,
  ownerId: string,
  q: { folder?: Folder; kind?: FileKind; category?: FileCategory; project_id?: string; limit: number; offset: number },
): Promise<{ rows: FileRow[]; total: number }> {
  const where = and(
    eq(files.ownerId, ownerId),
    eq(files.status, "ready"),
    q.folder ? eq(files.folder, q.folder) : undefined,
    q.project_id ? eq(files.projectId, q.project_id) : undefined,
    q.kind ? kindFilter(q.kind) : undefined,
    q.category ? categoryFilter(ownerId, q.category) : undefined,
  );
  const [rows, [totals]] = await Promise.all([
    db.select().from(files).where(where).orderBy(desc(files.createdAt), desc(files.id)).limit(q.limit).offset(q.offset),
    db.select({ n: count() }).from(files).where(where),
  ]);
  return { rows, total: totals?.n ?? 0 };
}

/** A project's ready files of the owner, oldest first (the order they were made in), narrowed to the ids and jobs given. */
export async function listProjectFiles(
  db: Db,
  ownerId: string,
  q: { project_id: string; kind?: FileKind; file_ids?: string[]; job_ids?: string[]; limit: number; offset: number },
): Promise<{ rows: FileRow[]; total: number }> {
  if (q.file_ids?.length === 0 || q.job_ids?.length === 0) return { rows: [], total: 0 };
  const where = and(
    eq(files.ownerId, ownerId),
    eq(files.projectId, q.project_id),
    eq(files.status, "ready"),
    q.kind ? kindFilter(q.kind) : undefined,
    q.file_ids ? inArray(files.id, q.file_ids) : undefined,
    q.job_ids ? inArray(files.jobId, q.job_ids) : undefined,
  );
  const [rows, [totals]] = await Promise.all([
    db.select().from(files).where(where).orderBy(asc(files.createdAt), asc(files.id)).limit(q.limit).offset(q.offset),
    db.select({ n: count() }).from(files).where(where),
  ]);
  return { rows, total: totals?.n ?? 0 };
}

/** Every file of the owner's project, whatever its state: what goes when the project does. */
export async function projectFileRows(db: Db, ownerId: string, projectId: string): Promise<FileRow[]> {
  return db
    .select()
    .from(files)
    .where(and(eq(files.ownerId, ownerId), eq(files.projectId, projectId)));
}

// Kind is derived from the content type (kindOf), so the filter mirrors it in SQL.
function kindFilter(kind: FileKind) {
  if (kind !== "other") return sql`split_part(${files.contentType}, '/', 1) = ${kind}`;
  return sql`split_part(${files.contentType}, '/', 1) not in ('image', 'video', 'audio')`;
}

/**
 * Seed 003's output categories. A final file is an output of a pipeline run's last stage: the run's
 * `outputs` in job-service's table of the shared database (read as job-service reads ours, ADR 027).
 */
function categoryFilter(ownerId: string, category: FileCategory) {
  const final = sql`exists (select 1 from jobs.pipelines p where p.user_id = ${ownerId} and p.outputs ? ${files.id}::text)`;
  if (category === "final") return and(eq(files.folder, "output"), final);
  const kind = ({ images: "image", videos: "video", audio: "audio" } as const)[category];
  return and(eq(files.folder, "output"), kindFilter(kind), sql`not ${final}`);
}

/**
 * pending → receiving, for one ingest PUT only: a conditional update, so of two PUTs to the same
 * URL (on any replica) exactly one gets the row. Undefined when it is not pending.
 */
export async function claimIngest(db: Db, id: string): Promise<FileRow | undefined> {
  const [row] = await db
    .update(files)
    .set({ status: "receiving" })
    .where(and(eq(files.id, id), eq(files.status, "pending")))
    .returning();
  return row;
}

/**
 * pending → receiving for the one signed PUT a ticket allows, found by the key it was signed for:
 * a second PUT, or one after confirm, finds the row in another state. Undefined then.
 */
export async function claimSignedPut(db: Db, key: string): Promise<FileRow | undefined> {
  const [row] = await clientOf(db)<FileSqlRow[]>`
    update storage.files set status = 'receiving' where id = ${fileIdOfKey(key)} and storage_key = ${key} and status = 'pending' returning *`;
  return row && fileRowOf(row);
}

/** `from` → `to` as a conditional update: of two calls racing for the row, exactly one moves it. Undefined when it was not in `from`. */
export async function moveFile(db: Db, id: string, from: FileRow["status"], to: FileRow["status"]): Promise<FileRow | undefined> {
  const [row] = await clientOf(db)<FileSqlRow[]>`update storage.files set status = ${to} where id = ${id} and status = ${from} returning *`;
  return row && fileRowOf(row);
}

/** receiving → pending: the PUT failed part-way, so the ingest or signed URL may be tried again. */
export async function releaseIngest(db: Db, id: string): Promise<void> {
  await db
    .update(files)
    .set({ status: "pending" })
    .where(and(eq(files.id, id), eq(files.status, "receiving")));
}

/**
 * pending (or receiving, uploaded) → ready, with the content type the bytes showed when given; a row
 * confirmed concurrently (already ready) is returned as it is.
 */
export async function markReady(db: Db, id: string, size: number, contentType?: string, media?: MediaFacts): Promise<FileRow> {
  const facts = media
    ? {
        width: media.width,
        height: media.height,
        duration_seconds: media.duration_seconds,
        frame_rate: media.frame_rate,
        video_codec: media.video_codec ?? null,
        audio_codec: media.audio_codec ?? null,
        has_audio: media.has_audio ?? null,
        has_alpha: media.has_alpha ?? null,
      }
    : {};
  const q = clientOf(db);
  const patch = { status: "ready", size, confirmed_at: new Date().toISOString(), ...(contentType ? { content_type: contentType } : {}), ...facts };
  const [row] = await q<FileSqlRow[]>`update storage.files set ${q(patch)} where id = ${id} and status in ('pending', 'receiving', 'uploaded') returning *`;
  return row ? fileRowOf(row) : (await getFileRow(db, id))!;
}

export async function markRejected(db: Db, id: string): Promise<void> {
  await db.update(files).set({ status: "rejected" }).where(eq(files.id, id));
}

export async function deleteFileRow(db: Db, id: string): Promise<void> {
  await db.delete(files).where(eq(files.id, id));
}

export async function fileStats(db: Db): Promise<{ total_files: number; total_bytes: number }> {
  const [row] = await db
    .select({ n: count(), bytes: sql<string>`coalesce(sum(${files.size}), 0)` })
    .from(files)
    .where(eq(files.status, "ready"));
  return { total_files: row?.n ?? 0, total_bytes: Number(row?.bytes ?? 0) };
}

export function toFileObject(row: FileRow): FileObject {
  const media = mediaOf(row);
  return {
    id: row.id,
    filename: row.filename,
    content_type: row.contentType,
    kind: kindOf(row.contentType),
    // Until confirmed, the size a client declared is the best we know.
    size: row.status === "ready" ? row.size : (row.declaredSize ?? row.size),
    folder: row.folder,
    status: row.status === "receiving" || row.status === "uploaded" ? "pending" : row.status,
    project_id: row.projectId,
    job_id: row.jobId,
    created_at: row.createdAt.toISOString(),
    // The measured facts, shown as `media` and as `metadata` (seed 000's names: duration, fps).
    ...(media ? { media, metadata: toFileMetadata(media) } : {}),
  };
}

/** The measured facts of a file, undefined when it was never measured. */
export function mediaOf(row: FileRow): MediaFacts | undefined {
  if (row.width === null && row.durationSeconds === null) return undefined;
  return {
    width: row.width,
    height: row.height,
    duration_seconds: row.durationSeconds,
    frame_rate: row.frameRate,
    video_codec: row.videoCodec,
    audio_codec: row.audioCodec,
    has_audio: row.hasAudio,
    has_alpha: row.hasAlpha,
  };
}

