import { randomUUID } from "node:crypto";
import { AppError, type LedgerKind } from "@cutroom/contracts";
import { and, eq, executePrepared, inArray, sqlTag as sql, type Db, type Tx } from "@cutroom/db";
import { accounts, ledger } from "@cutroom/db/billing";

/**
 * Every move of credits runs inside a transaction the caller opens, so job-service can reserve a
 * job's credits and insert the job in one commit (ADR 019) while billing-service opens its own.
 */
export type { Tx };
/** The pool or an open transaction. */
export type Conn = Db | Tx;

/** Locks the user's account row for the rest of the transaction: credit moves per user are serial. */
export async function lockAccount(tx: Tx, userId: string) {
  const [acct] = await tx.select().from(accounts).where(eq(accounts.userId, userId)).for("update");
  if (!acct) throw new AppError("NOT_FOUND", "no credit account for this user");
  return acct;
}

/** Appends one ledger row; the caller updates the account in the same transaction. */
export async function append(tx: Tx, userId: string, kind: LedgerKind, amount: number, jobId: string | null, note: string | null) {
  await tx.insert(ledger).values({ id: randomUUID(), userId, kind, amount, jobId, note });
}

/**
 * Locks the users' accounts for the rest of the transaction, in user id order, so two transactions
 * locking overlapping sets never deadlock. With `skipLocked`, an account another transaction holds
 * is left out, as is a missing one: the caller handles those users on their own.
 */
export async function lockAccounts(tx: Tx, userIds: readonly string[], opts: { skipLocked?: boolean } = {}) {
  // Plain SQL with one array parameter: a query built per batch should not cost more than it reads.
  // Prepared: one round trip, and pipelined with the statements sent beside it (ADR 044).
  const rows = await executePrepared<{ user_id: string; available: number; reserved: number }>(tx, sql`
    select user_id, available, reserved from billing.accounts
    where user_id = any(${sql.param([...new Set(userIds)])}::uuid[])
    order by user_id
    for update ${opts.skipLocked ? sql`skip locked` : sql``}`);
  return new Map([...rows].map((r) => [r.user_id, { userId: r.user_id, available: Number(r.available), reserved: Number(r.reserved) }]));
}

export type LockedAccounts = Awaited<ReturnType<typeof lockAccounts>>;

/** One job's reservation in `planReservations`. */
export interface Reservation {
  userId: string;
  jobId: string;
  amount: number;
}

export type ReserveOutcome = { ok: true; balance: number } | { ok: false; error: AppError };

/**
 * `reserve` for many jobs at once, decided in memory: each job is held or refused on its own (402
 * for one leaves the others), in the order given, against the accounts locked by `lockAccounts`
 * (which it keeps current). The jobs must hold no reserve yet; one listed twice is reserved once.
 * `writeReservations` then records it in two statements, however many jobs.
 */
export function planReservations(locked: LockedAccounts, items: readonly Reservation[]) {
  const taken = new Set<string>();
  const rows: (typeof ledger.$inferInsert)[] = [];
  const changed = new Set<string>();
  const outcomes = items.map((item): ReserveOutcome => {
    const acct = locked.get(item.userId);
    if (!acct) return { ok: false, error: new AppError("NOT_FOUND", "no credit account for this user") };
    if (taken.has(item.jobId)) return { ok: true, balance: acct.available };
    if (acct.available < item.amount) return { ok: false, error: insufficient(item.amount, acct.available) };
    taken.add(item.jobId);
    rows.push({ id: randomUUID(), userId: item.userId, kind: "reserve", amount: -item.amount, jobId: item.jobId, note: null });
    acct.available -= item.amount;
    acct.reserved += item.amount;
    changed.add(item.userId);
    return { ok: true, balance: acct.available };
  });
  const accountsAfter = [...changed].map((userId) => ({ userId, available: locked.get(userId)!.available, reserved: locked.get(userId)!.reserved }));
  return { outcomes, rows, accounts: accountsAfter };
}

/**
 * Records a plan of `planReservations`: one multi-row insert of the ledger, one update of the
 * accounts, sent together. Each takes its rows as arrays, so its text is the same whatever the
 * batch's size: Postgres parses and plans it once per connection, not once per size (ADR 034).
 */
export async function writeReservations(tx: Tx, plan: ReturnType<typeof planReservations>): Promise<void> {
  if (plan.rows.length === 0) return;
  const { rows, accounts: changed } = plan;
  await Promise.all([
    executePrepared(tx, sql`
      insert into billing.ledger (id, user_id, kind, amount, job_id, note)
      select * from unnest(${sql.param(rows.map((r) => r.id))}::uuid[], ${sql.param(rows.map((r) => r.userId))}::uuid[], ${sql.param(rows.map((r) => r.kind))}::text[],
        ${sql.param(rows.map((r) => r.amount))}::int[], ${sql.param(rows.map((r) => r.jobId ?? null))}::uuid[], ${sql.param(rows.map((r) => r.note ?? null))}::text[])`),
    executePrepared(tx, sql`
      update billing.accounts a set available = v.available, reserved = v.reserved, updated_at = now()
      from unnest(${sql.param(changed.map((a) => a.userId))}::uuid[], ${sql.param(changed.map((a) => a.available))}::int[], ${sql.param(changed.map((a) => a.reserved))}::int[])
        as v(user_id, available, reserved)
      where a.user_id = v.user_id`),
  ]);
}

const insufficient = (required: number, available: number) =>
  new AppError("INSUFFICIENT_CREDITS", `this job needs ${required} credits; ${available} available`, { required, available });

/** Holds `amount` for a job. Idempotent per job: a second reserve for the same job is a no-op. */
export async function reserve(tx: Tx, userId: string, jobId: string, amount: number) {
  const acct = await lockAccount(tx, userId);
  const [existing] = await tx.select({ id: ledger.id }).from(ledger).where(and(eq(ledger.jobId, jobId), eq(ledger.kind, "reserve")));
  if (existing) return { balance: acct.available };
  if (acct.available < amount) throw insufficient(amount, acct.available);
  await append(tx, userId, "reserve", -amount, jobId, null);
  const available = acct.available - amount;
  await tx.update(accounts).set({ available, reserved: acct.reserved + amount, updatedAt: new Date() }).where(eq(accounts.userId, userId));
  return { balance: available };
}

/**
 * Settles a job's reservation exactly once: capture keeps the credits, release gives them back.
 * Whichever comes first wins; later calls report the state it left.
 */
export async function settle(tx: Tx, jobId: string, outcome: "capture" | "release") {
  const [held] = await tx.select().from(ledger).where(and(eq(ledger.jobId, jobId), eq(ledger.kind, "reserve")));
  if (!held) return { state: "none" as const, refunded: 0 };
  const acct = await lockAccount(tx, held.userId);
  const [done] = await tx
    .select({ kind: ledger.kind })
    .from(ledger)
    .where(and(eq(ledger.jobId, jobId), inArray(ledger.kind, ["capture", "release"])));
  if (done) return { state: stateOf(done.kind), refunded: 0 };
  const amount = -held.amount;
  const refund = outcome === "release" ? amount : 0;
  await append(tx, held.userId, outcome, refund, jobId, outcome === "capture" ? `captured ${amount}` : null);
  await tx
    .update(accounts)
    .set({ available: acct.available + refund, reserved: acct.reserved - amount, updatedAt: new Date() })
    .where(eq(accounts.userId, held.userId));
  return { state: stateOf(outcome), refunded: refund };
}

const stateOf = (kind: string) => (kind === "capture" ? ("captured" as const) : ("released" as const));

export interface OrphanReservation {
  jobId: string;
  userId: string;
  /** The credits it holds. */
  amount: number;
  createdAt: Date;
}

/**
 * Open reservations (a `reserve` with no capture or release) whose job does not exist: credits held
 * for nothing. Since job creation commits both together, the list stays empty; a test or a chaos run
 * asserts that, and the job-service reconciler releases what it finds past `olderThanMs`.
 * `withinMs` reads only reservations made that recently (an index range, not the whole ledger);
 * without it, every reservation ever made is checked.
 */
export async function orphanReservations(db: Conn, opts: { olderThanMs?: number; withinMs?: number; limit?: number } = {}): Promise<OrphanReservation[]> {
  const since = opts.withinMs === undefined ? sql`` : sql`and r.created_at >= now() - make_interval(secs => ${opts.withinMs / 1000})`;
  const rows = await db.execute<{ job_id: string; user_id: string; amount: number; created_at: string | Date }>(sql`
    select r.job_id, r.user_id, -r.amount as amount, r.created_at
    from billing.ledger r
    where r.kind = 'reserve'
      and r.created_at < now() - make_interval(secs => ${(opts.olderThanMs ?? 0) / 1000})
      ${since}
      and not exists (select 1 from billing.ledger s where s.job_id = r.job_id and s.kind in ('capture', 'release'))
      and not exists (select 1 from jobs.jobs j where j.id = r.job_id)
    order by r.created_at
    limit ${opts.limit ?? 1000}`);
  return [...rows].map((r) => ({ jobId: r.job_id, userId: r.user_id, amount: Number(r.amount), createdAt: new Date(r.created_at) }));
}

export { consumeRate, takeRates, type RateDecision, type RateTake } from "./rate-windows.ts";
