import { sqlTag as sql, type Db } from "@cutroom/db";

const WINDOW_MS = 60_000;

/**
 * A fixed one-minute window per user and bucket, counted in Postgres so every gateway
 * replica sees the same number. One round trip: upsert and read the count.
 */
export async function consumeRate(db: Db, userId: string, bucket: string, limit: number, now = Date.now()) {
  const windowStart = new Date(Math.floor(now / WINDOW_MS) * WINDOW_MS);
  const rows = await db.execute<{ count: number }>(sql`
    insert into billing.rate_windows (user_id, bucket, window_start, count)
    values (${userId}, ${bucket}, ${windowStart.toISOString()}, 1)
    on conflict (user_id, bucket, window_start) do update set count = billing.rate_windows.count + 1
    returning count`);
  const count = Number(rows[0]!.count);
  if (Math.random() < 0.01) {
    // Only this user's bucket: the primary-key prefix, so no scan of the whole table inside a request.
    await db.execute(sql`
      delete from billing.rate_windows
      where user_id = ${userId} and bucket = ${bucket} and window_start < ${new Date(now - 10 * WINDOW_MS).toISOString()}`);
  }
  return {
    allowed: count <= limit,
    limit,
    remaining: Math.max(0, limit - count),
    reset: Math.ceil((windowStart.getTime() + WINDOW_MS) / 1000),
  };
}
