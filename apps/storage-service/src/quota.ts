import { AppError, tierLimits, type Caller, type StorageUsage } from "@cutroom/contracts";
import { sqlTag as sql, type Db } from "@cutroom/db";

/**
 * The bytes a user's files take: ready files by their size, uploads under way (pending, receiving,
 * uploaded) by the size they declared, or what has arrived so far; refused files none. `except`: a
 * file not to count (the upload being checked, whose row exists already).
 */
export async function storageUsed(db: Db, userId: string, except?: string): Promise<number> {
  const [row] = await db.execute<{ used: string | null }>(sql`
    select sum(case when status = 'ready' then size when status = 'rejected' then 0 else greatest(coalesce(declared_size, 0), size) end) as used
    from storage.files
    where owner_id = ${userId} ${except ? sql`and id <> ${except}` : sql``}`);
  return Number(row?.used ?? 0);
}

export async function storageUsage(db: Db, caller: Caller): Promise<StorageUsage> {
  return { used_bytes: await storageUsed(db, caller.user_id), quota_bytes: tierLimits[caller.tier].storageQuotaBytes };
}

/**
 * Refuses an upload of `fileSize` bytes that would take the caller past their tier's storage quota
 * (ADR 031): 413 STORAGE_QUOTA_EXCEEDED with the figures. Every way bytes come in calls it before it
 * takes them (signed and multipart uploads; chunked, tus and imports once they know the size). Two
 * uploads checked at once may both pass: the quota bounds an account, it reserves nothing.
 */
export async function checkQuota(db: Db, caller: Caller, fileSize: number, opts: { except?: string } = {}): Promise<void> {
  const quota = tierLimits[caller.tier].storageQuotaBytes;
  const used = await storageUsed(db, caller.user_id, opts.except);
  if (used + fileSize > quota) {
    throw new AppError("STORAGE_QUOTA_EXCEEDED", `this file of ${fileSize} bytes would take your storage past the ${caller.tier} tier's ${quota} bytes (${used} used)`, {
      used_bytes: used,
      quota_bytes: quota,
      file_size: fileSize,
    });
  }
}
