import { createHash } from "node:crypto";
import { sqlTag as sql, type Db } from "@cutroom/db";

/**
 * A fixed window per key and bucket, counted in Postgres so every gateway replica sees the same
 * number. One round trip: upsert and read the count. A cost of -1 gives one unit back (never below 0).
 */
export async function consumeRate(db: Db, w: { key: string; bucket: string; limit: number; windowMs?: number; cost?: 1 | -1 }, now = Date.now()) {
  const windowMs = w.windowMs ?? 60_000;
  const cost = w.cost ?? 1;
  const windowStart = new Date(Math.floor(now / windowMs) * windowMs);
  const rows = await db.execute<{ count: number }>(sql`
    insert into billing.rate_windows (user_id, bucket, window_start, count)
    values (${w.key}, ${w.bucket}, ${windowStart.toISOString()}, ${Math.max(cost, 0)})
    on conflict (user_id, bucket, window_start) do update set count = greatest(billing.rate_windows.count + ${cost}, 0)
    returning count`);
  const count = Number(rows[0]!.count);
  if (Math.random() < 0.01) {
    // Only this key's bucket: the primary-key prefix, so no scan of the whole table inside a request.
    await db.execute(sql`
      delete from billing.rate_windows
      where user_id = ${w.key} and bucket = ${w.bucket} and window_start < ${new Date(now - 10 * windowMs).toISOString()}`);
  }
  return {
    allowed: count <= w.limit,
    limit: w.limit,
    remaining: Math.max(0, w.limit - count),
    reset: Math.ceil((windowStart.getTime() + windowMs) / 1000),
  };
}

/**
 * Throttle keys (emails, addresses) as the uuid the windows table is keyed by: a digest, so billing
 * stores no one's email or address, only a number per bucket.
 */
export function throttleKey(key: string): string {
  const h = createHash("sha256").update(key).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
