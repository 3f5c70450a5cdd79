import { and, asc, count, eq, gt, lt, sqlTag as sql, type Db } from "@cutroom/db";
import { files, uploadParts, uploads } from "@cutroom/db/storage";
import { storageKey, type FileRow } from "./files.ts";

/** The rows of storage.uploads and storage.upload_parts (resumable uploads, ADR 030), as plain queries. */
export type UploadRow = typeof uploads.$inferSelect;
export type PartRow = typeof uploadParts.$inferSelect;

/** An upload and the file it becomes, inserted together: the file stays `receiving` (not confirmable, not listed) until complete. */
export async function insertUpload(
  db: Db,
  u: Omit<typeof uploads.$inferInsert, "fileId">,
  f: { id: string; projectId?: string; filename: string; contentType: string },
): Promise<UploadRow> {
  return db.transaction(async (tx) => {
    await tx.insert(files).values({
      id: f.id,
      ownerId: u.ownerId,
      projectId: f.projectId ?? null,
      folder: "input",
      filename: f.filename,
      contentType: f.contentType,
      declaredSize: u.totalSize,
      status: "receiving",
      storageKey: storageKey(u.ownerId, f.id),
    });
    const [row] = await tx
      .insert(uploads)
      .values({ ...u, fileId: f.id })
      .returning();
    return row!;
  });
}

/** A live upload (not expired, not terminated): of `ownerId` when given (another user's is simply not there). */
export async function getLiveUpload(db: Db, id: string, ownerId?: string): Promise<UploadRow | undefined> {
  const [row] = await db
    .select()
    .from(uploads)
    .where(and(eq(uploads.id, id), ownerId ? eq(uploads.ownerId, ownerId) : undefined, gt(uploads.expiresAt, new Date()), sql`${uploads.status} <> 'terminated'`));
  return row;
}

export async function listParts(db: Db, uploadId: string): Promise<PartRow[]> {
  return db.select().from(uploadParts).where(eq(uploadParts.uploadId, uploadId)).orderBy(asc(uploadParts.partIndex));
}

export async function getPart(db: Db, uploadId: string, partIndex: number): Promise<PartRow | undefined> {
  const [row] = await db
    .select()
    .from(uploadParts)
    .where(and(eq(uploadParts.uploadId, uploadId), eq(uploadParts.partIndex, partIndex)));
  return row;
}

/**
 * Records a stored part (replacing an earlier one of the same index) while the upload is open;
 * false when it is not any more (completed, expired meanwhile). Returns how many parts are in.
 */
export async function recordPart(db: Db, part: PartRow): Promise<number | undefined> {
  const put = await db.execute(sql`
    insert into storage.upload_parts (upload_id, part_index, part_number, size, etag)
    select ${part.uploadId}, ${part.partIndex}, ${part.partNumber}, ${part.size}, ${part.etag}
    where exists (select 1 from storage.uploads where id = ${part.uploadId} and status = 'open')
    on conflict (upload_id, part_index) do update set part_number = excluded.part_number, size = excluded.size, etag = excluded.etag
    returning part_index`);
  if (put.length === 0) return undefined;
  const [row] = await db.select({ n: count() }).from(uploadParts).where(eq(uploadParts.uploadId, part.uploadId));
  return row?.n ?? 0;
}

/** `from` → `to` as a conditional update: of two calls racing, one moves it. */
export async function moveUpload(db: Db, id: string, from: UploadRow["status"], to: UploadRow["status"]): Promise<UploadRow | undefined> {
  const [row] = await db
    .update(uploads)
    .set({ status: to, lockedUntil: null })
    .where(and(eq(uploads.id, id), eq(uploads.status, from)))
    .returning();
  return row;
}

/** tus: takes the upload for one PATCH (a lease of `leaseMs`, renewed as parts are stored); undefined when another PATCH holds it. */
export async function lockUpload(db: Db, id: string, leaseMs: number): Promise<UploadRow | undefined> {
  const [row] = await db
    .update(uploads)
    .set({ lockedUntil: sql`now() + ${`${leaseMs} milliseconds`}::interval` })
    .where(and(eq(uploads.id, id), eq(uploads.status, "open"), sql`(${uploads.lockedUntil} is null or ${uploads.lockedUntil} < now())`))
    .returning();
  return row;
}

export async function renewLock(db: Db, id: string, leaseMs: number): Promise<void> {
  await db
    .update(uploads)
    .set({ lockedUntil: sql`now() + ${`${leaseMs} milliseconds`}::interval` })
    .where(eq(uploads.id, id));
}

/** tus: what one PATCH stored, in one transaction: its whole parts, the new offset and tail, and the lock given back. */
export async function commitPatch(db: Db, id: string, parts: PartRow[], state: { offset: number; tailKey: string | null; tailSize: number }): Promise<void> {
  await db.transaction(async (tx) => {
    if (parts.length > 0) {
      await tx
        .insert(uploadParts)
        .values(parts)
        .onConflictDoUpdate({
          target: [uploadParts.uploadId, uploadParts.partIndex],
          set: { partNumber: sql`excluded.part_number`, size: sql`excluded.size`, etag: sql`excluded.etag` },
        });
    }
    await tx
      .update(uploads)
      .set({ ...state, lockedUntil: null })
      .where(eq(uploads.id, id));
  });
}

export async function unlockUpload(db: Db, id: string): Promise<void> {
  await db.update(uploads).set({ lockedUntil: null }).where(eq(uploads.id, id));
}

export async function deleteUploadRow(db: Db, id: string): Promise<void> {
  await db.delete(uploads).where(eq(uploads.id, id));
}

/** Uploads past their expiry, a batch at a time, with the file each was to become. */
export async function expiredUploads(db: Db, now: Date, limit: number): Promise<Array<{ upload: UploadRow; file: FileRow | null }>> {
  const rows = await db
    .select()
    .from(uploads)
    .leftJoin(files, eq(files.id, uploads.fileId))
    .where(lt(uploads.expiresAt, now))
    .limit(limit);
  return rows.map((r) => ({ upload: r.uploads, file: r.files }));
}

/** Signed-URL tickets never confirmed: inputs still pending (or PUT but not confirmed) since before `before`. */
export function staleTickets(db: Db, before: Date, limit: number) {
  return db
    .select()
    .from(files)
    .where(
      and(
        // files_unconfirmed_idx's condition, written out as the index has it.
        sql`${files.folder} = 'input' and ${files.status} in ('pending', 'uploaded')`,
        lt(files.createdAt, before),
        sql`not exists (select 1 from storage.uploads u where u.file_id = ${files.id})`,
      ),
    )
    .limit(limit);
}
