import { executePrepared, sqlTag as sql, type Db } from "@cutroom/db";
import type { Tx } from "./index.ts";

/** What a caller is told about one unit of a window: allowed or not, and the X-RateLimit-* figures. */
export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  reset: number;
}

/** `units` of one key's bucket, taken together (`takeRates`). */
export interface RateTake {
  key: string;
  bucket: string;
  limit: number;
  windowMs?: number;
  units: number;
}

/**
 * Fixed windows per key and bucket, counted in Postgres so every replica sees the same number
 * (ADR 009). Takes every window's units in one upsert, in the caller's transaction or alone, and
 * answers each unit's decision in order: the n-th unit of a take counts as the n-th request, so a
 * batch decides exactly as the same requests one by one would. A refused unit counts too, as before.
 * Windows are upserted in (key, bucket) order: two transactions taking overlapping sets never deadlock.
 */
export async function takeRates(conn: Db | Tx, takes: readonly RateTake[], now = Date.now()): Promise<RateDecision[][]> {
  if (takes.length === 0) return [];
  const windows = takes.map((t) => {
    const windowMs = t.windowMs ?? 60_000;
    return { ...t, windowMs, windowStart: new Date(Math.floor(now / windowMs) * windowMs) };
  });
  const ordered = [...windows].sort((a, b) => (a.key === b.key ? cmp(a.bucket, b.bucket) : cmp(a.key, b.key)));
  // Arrays, not a values list: one statement text whatever the number of windows (ADR 034). The
  // window starts go as text: postgres.js has no serializer for a timestamptz[] parameter.
  const rows = await executePrepared<{ user_id: string; bucket: string; count: number }>(conn, sql`
    insert into billing.rate_windows (user_id, bucket, window_start, count)
    select * from unnest(${sql.param(ordered.map((w) => w.key))}::uuid[], ${sql.param(ordered.map((w) => w.bucket))}::text[],
      ${sql.param(ordered.map((w) => w.windowStart.toISOString()))}::text[]::timestamptz[], ${sql.param(ordered.map((w) => w.units))}::int[])
    on conflict (user_id, bucket, window_start) do update set count = greatest(billing.rate_windows.count + excluded.count, 0)
    returning user_id, bucket, count`);
  const counts = new Map([...rows].map((r) => [`${r.user_id}\0${r.bucket}`, Number(r.count)]));
  const decisions = windows.map((w) => {
    const after = counts.get(`${w.key}\0${w.bucket}`)!;
    const reset = Math.ceil((w.windowStart.getTime() + w.windowMs) / 1000);
    return Array.from({ length: w.units }, (_, i) => {
      const count = after - w.units + i + 1;
      return { allowed: count <= w.limit, limit: w.limit, remaining: Math.max(0, w.limit - count), reset };
    });
  });
  for (const w of windows) {
    // Only this key's bucket: the primary-key prefix, so no scan of the whole table inside a request.
    if (Math.random() < 0.01) {
      await conn.execute(sql`
        delete from billing.rate_windows
        where user_id = ${w.key} and bucket = ${w.bucket} and window_start < ${new Date(now - 10 * w.windowMs).toISOString()}`);
    }
  }
  return decisions;
}

/**
 * One unit of a window (`takeRates`); a cost of -1 gives one unit back (never below 0), for a
 * throttle that counts failures only.
 */
export async function consumeRate(db: Db | Tx, w: { key: string; bucket: string; limit: number; windowMs?: number; cost?: 1 | -1 }, now = Date.now()): Promise<RateDecision> {
  if ((w.cost ?? 1) === 1) return (await takeRates(db, [{ ...w, units: 1 }], now))[0]![0]!;
  const windowMs = w.windowMs ?? 60_000;
  const windowStart = new Date(Math.floor(now / windowMs) * windowMs);
  const rows = await db.execute<{ count: number }>(sql`
    update billing.rate_windows set count = greatest(count - 1, 0)
    where user_id = ${w.key} and bucket = ${w.bucket} and window_start = ${windowStart.toISOString()}
    returning count`);
  const count = Number(rows[0]?.count ?? 0);
  return { allowed: count <= w.limit, limit: w.limit, remaining: Math.max(0, w.limit - count), reset: Math.ceil((windowStart.getTime() + windowMs) / 1000) };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
