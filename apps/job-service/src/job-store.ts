import { AppError, tierLimits, type FinishBody, type Job, type JobError, type JobEvent, type ListJobsQuery } from "@cutroom/contracts";
import { and, asc, desc, eq, executePrepared, getTableColumns, inArray, or, sqlTag as sql, transactionInOneTrip, transactionPipelined, type Db, type DbOptions, type SQL, type Tx } from "@cutroom/db";
import { jobs } from "@cutroom/db/jobs";
import { lockAccounts, planReservations, takeRates, writeReservations, type RateDecision, type RateTake } from "@cutroom/ledger";
import { rpcTimedOut } from "@cutroom/runtime";
import { applyEvent, type JobPatch } from "./apply-event.ts";
import { lockLiveProjects } from "./project-store.ts";
import { countCreated, countEnded, countStarted } from "./job-metrics.ts";
import { requeueForRetry, type RetryPolicy } from "./job-control.ts";

/**
 * job-service's pool: each statement keeps its generic plan (ADR 060). Its hot and reconciler statements
 * are written for it (states as literals where a partial index needs them) and `statement-plans.test.ts`
 * checks what those plans read; Postgres's default planned the admission anew at every job's end.
 */
export const jobDbOptions: DbOptions = { plans: "generic" };

export type JobRow = typeof jobs.$inferSelect;
export type NewJob = typeof jobs.$inferInsert;
export type { Tx };
/** The pool or an open transaction: the reconciler calls these with the rows it has locked. */
export type Conn = Db | Tx;

/** A queued job's place in its line and its eta (ADR 037), as queueLines works them out. */
export interface QueuePlace {
  position: number;
  eta: number | null;
}

/**
 * The public shape of a row; `place`: a queued job's place in its line (queueLines), or a held job's
 * bare position (creation knows it without a read). A dispatched job is shown in its worker queue's
 * line only with a place, so a caller that did not look (a cancel's answer) shows none.
 */
export function toJob(row: JobRow, place?: number | QueuePlace): Job {
  const at = typeof place === "number" ? { position: place, eta: null } : place;
  const line = row.status !== "queued" ? null : row.held ? "concurrency_limit" : at && row.dispatchedAt != null ? "waiting_for_worker" : null;
  return {
    id: row.id,
    type: row.type,
    status: row.status,
    progress: row.progress,
    stage: row.stage,
    stages: row.stages as Job["stages"],
    input: row.input,
    result: (row.result as Job["result"]) ?? null,
    error: row.error ?? null,
    credits: { amount: row.credits, state: row.creditState },
    attempts: row.attempts,
    max_attempts: row.maxAttempts,
    next_attempt_at: row.status === "queued" ? (row.nextAttemptAt?.toISOString() ?? null) : null,
    priority: row.priority,
    start_by: row.startBy?.toISOString() ?? null,
    timeout_s: row.timeoutS,
    provider_cost_usd: row.providerCostUsd,
    project_id: row.projectId,
    queue_position: line ? (at?.position ?? null) : null,
    queue_reason: line,
    eta_seconds: line ? (at?.eta ?? null) : null,
    display_name: row.displayName ?? null,
    metadata: row.metadata ?? {},
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    started_at: row.startedAt?.toISOString() ?? null,
    completed_at: row.completedAt?.toISOString() ?? null,
  };
}

const tooLate = new Error("past the caller's deadline");
const keyTaken = new Error("a job of the batch was inserted meanwhile");
// lock_not_available (lock_timeout) and query_canceled (statement_timeout).
const TIMED_OUT = new Set(["55P03", "57014"]);

/** A job to create (insertReservedJobs): the row, the per-minute slot it takes, and its caller's deadline. */
export interface JobToCreate {
  job: NewJob & { id: string };
  /** The window the job takes a unit of; absent for a pipeline's job, whose run took one. */
  rate?: { bucket: string; limit: number };
  /** Epoch ms: nothing commits after it (the caller has told its client 503 by then). */
  commitBy?: number;
}

/** What became of one job of a batch. */
export type CreateOutcome =
  /** `position`: a held job's place among its owner's waiting jobs (ADR 031). */
  | { kind: "created"; row: JobRow; rate?: RateDecision; position?: number }
  /** A keyed job that exists already (a retry): nothing taken, nothing reserved. */
  | { kind: "exists"; row: JobRow }
  | { kind: "rate-limited"; rate: RateDecision }
  /** 402 for its credits, 404 for its project or account. */
  | { kind: "refused"; error: AppError }
  /** Its account was locked by another transaction: create it on its own (`skipLocked` only). */
  | { kind: "alone" };

/**
 * Creates jobs in one transaction (ADR 019, ADR 027): under their accounts' locks, each keyed job
 * found by its id is answered as it is; each other takes its rate slot, then reserves its credits,
 * then is inserted. Each job's refusal (429, 402, 404) is its own; the others commit. The statements
 * per call are constant, not per job. Both the reservation and the job commit, or neither.
 *
 * Nothing commits after the earliest `commitBy`: no statement or lock wait may run past it, and a
 * transaction still open then rolls back; it throws the callers' timeout error (503
 * SERVICE_UNAVAILABLE), and nothing was created. With `skipLocked`, a job whose account another
 * transaction holds is answered `alone` instead of waiting, so one busy account cannot hold up a batch.
 *
 * A job in a project holds the project live until it commits (404 NOT_FOUND when it is not): a
 * project deleted meanwhile waits for it, then cancels it with the rest.
 */
export async function insertReservedJobs(db: Db, items: readonly JobToCreate[], opts: { skipLocked?: boolean; atomic?: boolean } = {}): Promise<CreateOutcome[]> {
  const commitBy = Math.min(...items.map((i) => i.commitBy ?? Infinity));
  const left = () => Math.floor(commitBy - Date.now());
  if (left() <= 0) throw rpcTimedOut("job");
  try {
    // Its begin goes with the first statements (ADR 052): a creation waits on one round trip fewer.
    return countCreated(await transactionPipelined(db, async (tx) => {
      // Statements that need no answer of another go out together (postgres.js pipelines them on the
      // transaction's connection); the server still runs them in order, so the timeouts are set
      // first and the reads after them see what the account locks hold still.
      const timeouts =
        commitBy === Infinity
          ? undefined
          : // SET takes no parameters; set_config(…, true) is its SET LOCAL. Both end with the transaction.
            executePrepared(tx, sql`select set_config('lock_timeout', ${`${Math.max(1, left())}ms`}, true), set_config('statement_timeout', ${`${Math.max(1, left())}ms`}, true)`);
      const keyedIds = items.flatMap((item) => (item.job.idempotencyKey ? [item.job.id] : []));
      const inProjects = items.filter((item) => item.job.projectId);
      // A keyed job's id comes from (user, key): a retry finds its job by id, under the account lock.
      // The slots are read after the account locks, which every admission holds (ADR 031): the count is current.
      const [, locked, existing, live, slots] = await Promise.all([
        timeouts,
        lockAccounts(tx, items.map((i) => i.job.userId), opts),
        existingJobs(tx, keyedIds),
        inProjects.length > 0 ? lockLiveProjects(tx, inProjects.map((item) => ({ userId: item.job.userId, id: item.job.projectId! }))) : new Set<string>(),
        slotsInUse(tx, items.map((i) => i.job.userId)),
      ]);
      const outcomes: (CreateOutcome | undefined)[] = new Array(items.length);
      const open = (i: number) => outcomes[i] === undefined;
      const found = new Map(existing.map((r) => [r.id, r]));
      items.forEach((item, i) => {
        const row = found.get(item.job.id);
        if (!locked.has(item.job.userId)) outcomes[i] = opts.skipLocked ? { kind: "alone" } : { kind: "refused", error: new AppError("NOT_FOUND", "no credit account for this user") };
        else if (row) outcomes[i] = { kind: "exists", row };
        else if (item.job.projectId && !live.has(`${item.job.userId}\0${item.job.projectId}`)) {
          outcomes[i] = { kind: "refused", error: new AppError("NOT_FOUND", "project not found", { project_id: item.job.projectId }) };
        }
      });
      // All or none (POST /jobs/batch): a job found (a replay) or refused answers the batch before anything is taken.
      if (opts.atomic && outcomes.some((o) => o !== undefined)) {
        return Array.from(outcomes, (o): CreateOutcome => o ?? { kind: "refused", error: new AppError("IDEMPOTENCY_CONFLICT", "part of this batch exists already") });
      }

      // The per-minute slot before the credits, as one by one: a 429 reserves nothing.
      const rated = new Map<string, { take: RateTake; at: number[] }>();
      items.forEach((item, i) => {
        if (!open(i) || !item.rate) return;
        const id = `${item.job.userId}\0${item.rate.bucket}`;
        const entry = rated.get(id) ?? { take: { key: item.job.userId, bucket: item.rate.bucket, limit: item.rate.limit, units: 0 }, at: [] };
        entry.take.units++;
        entry.at.push(i);
        rated.set(id, entry);
      });
      const rates: (RateDecision | undefined)[] = new Array(items.length);
      const entries = [...rated.values()];
      (await takeRates(tx, entries.map((e) => e.take))).forEach((decisions, e) => {
        entries[e]!.at.forEach((i, n) => {
          const rate = decisions[n]!;
          rates[i] = rate;
          if (!rate.allowed) outcomes[i] = { kind: "rate-limited", rate };
        });
      });
      if (opts.atomic) {
        // The batch fits the window whole or takes none of it (the rollback gives back what was counted).
        const first = rates.find((r) => r !== undefined);
        if (first && rates.some((r) => r && !r.allowed)) throw new AtomicRefusal({ kind: "rate-limited", rate: { ...first, allowed: false, remaining: first.allowed ? first.remaining + 1 : 0 } });
      }

      // None of these jobs holds a reserve (ADR 059): it has no row (a keyed one was looked up above
      // under its account's lock, any other has a new id), and a reserve commits only with its job's
      // row. Should that ever not hold, ledger_job_reserve_uq refuses the second reserve: the batch
      // rolls back and charges nothing.
      const toReserve = items.flatMap((_, i) => (open(i) ? [i] : []));
      // Before the plan spends it: a batch short of credits is told the whole batch's price against this.
      const availableBefore = new Map([...locked.values()].map((a) => [a.userId, a.available]));
      const plan = planReservations(
        locked,
        toReserve.map((i) => ({ userId: items[i]!.job.userId, jobId: items[i]!.job.id, amount: items[i]!.job.credits })),
      );
      const toInsert = toReserve.filter((i, n) => {
        const r = plan.outcomes[n]!;
        if (!r.ok) outcomes[i] = { kind: "refused", error: r.error };
        return r.ok;
      });
      if (opts.atomic && toInsert.length < toReserve.length) {
        const shortOf = plan.outcomes.find((r) => !r.ok)!;
        const userId = items[toReserve[plan.outcomes.indexOf(shortOf)]!]!.job.userId;
        const required = toReserve.reduce((sum, i) => sum + (items[i]!.job.userId === userId ? items[i]!.job.credits : 0), 0);
        const available = availableBefore.get(userId);
        throw new AtomicRefusal({
          kind: "refused",
          error: available === undefined || shortOf.ok ? (shortOf as { error: AppError }).error : insufficientForBatch(required, available, toReserve.length),
        });
      }
      const positions = admit(slots, toInsert.map((i) => items[i]!.job));
      if (toInsert.length > 0) {
        // The ledger, the accounts and the jobs in one round trip: any failure rolls back all three.
        const [, rows] = await Promise.all([writeReservations(tx, plan), insertJobRows(tx, toInsert.map((i) => items[i]!.job))]);
        // A job of the batch taken meanwhile (its key by a job of another id): its reservation must not commit without it.
        if (rows.length !== toInsert.length) throw keyTaken;
        const byId = new Map(rows.map((r) => [r.id, r]));
        toInsert.forEach((i, n) => {
          outcomes[i] = { kind: "created", row: byId.get(items[i]!.job.id)!, ...(rates[i] ? { rate: rates[i] } : {}), ...(positions[n] ? { position: positions[n] } : {}) };
        });
      }
      if (left() <= 0) throw tooLate;
      return outcomes as CreateOutcome[];
    }));
  } catch (err) {
    if (err instanceof AtomicRefusal) return items.map(() => err.outcome);
    if (err === keyTaken) throw new KeyTaken();
    if (err === tooLate || (commitBy !== Infinity && TIMED_OUT.has(sqlState(err) ?? ""))) throw rpcTimedOut("job");
    throw err;
  }
}

/** Rolls an all-or-none creation back, answering every job of it with `outcome`. */
class AtomicRefusal {
  constructor(readonly outcome: CreateOutcome) {}
}

const insufficientForBatch = (required: number, available: number, jobs: number) =>
  new AppError("INSUFFICIENT_CREDITS", `these ${jobs} jobs need ${required} credits; ${available} available`, { required, available });

const jobColumns = Object.entries(getTableColumns(jobs));

/** The most jobs any tier runs at once: no admission releases more of a user's held jobs than this. */
const MOST_CONCURRENT_JOBS = Math.max(...Object.values(tierLimits).map((l) => l.concurrentJobs));
/** Each tier's concurrent-job limit, as one SQL parameter; a job of before tiers counts as enterprise. */
const concurrencyLimits = JSON.stringify(Object.fromEntries(Object.entries(tierLimits).map(([tier, l]) => [tier, l.concurrentJobs])));
const concurrencyLimit = (tier: JobRow["tier"] | undefined) => tierLimits[tier ?? "enterprise"].concurrentJobs;

/** Per user: the jobs holding a concurrent-job slot (queued with one, or running) and those waiting for one. */
async function slotsInUse(conn: Conn, userIds: readonly string[]): Promise<Map<string, { active: number; waiting: number }>> {
  const rows = await executePrepared<{ user_id: string; active: number; waiting: number }>(conn, sql`
    select user_id, count(*) filter (where not held)::int as active, count(*) filter (where held)::int as waiting
    from jobs.jobs where user_id = any(${sql.param([...new Set(userIds)])}::uuid[]) and status in ('queued', 'running')
    group by user_id`);
  return new Map([...rows].map((r) => [r.user_id, { active: Number(r.active), waiting: Number(r.waiting) }]));
}

/**
 * Marks each new job held or not, in order, from its owner's slots in use (ADR 031): a job takes a
 * free slot only when none of the owner's jobs waits already (those go first, oldest first; the
 * reconciler hands them slots a lost ending left free). Answers each held job's place, else 0.
 */
function admit(slots: Map<string, { active: number; waiting: number }>, newJobs: NewJob[]): number[] {
  const seen = new Map<string, { active: number; waiting: number }>();
  return newJobs.map((job) => {
    const user = seen.get(job.userId) ?? { ...(slots.get(job.userId) ?? { active: 0, waiting: 0 }) };
    seen.set(job.userId, user);
    job.held = user.waiting > 0 || user.active >= concurrencyLimit(job.tier);
    if (!job.held) {
      user.active++;
      return 0;
    }
    return ++user.waiting;
  });
}

/** Rows as `returning *` of plain SQL gives them, through the columns' own decoders. */
function decodeRows(raw: readonly Record<string, unknown>[]): JobRow[] {
  return raw.map((r) => Object.fromEntries(jobColumns.map(([key, col]) => [key, r[col.name] == null ? null : col.mapFromDriverValue(r[col.name])])) as JobRow);
}

/**
 * Hands the users' free concurrent-job slots to their held jobs, oldest first, and answers the jobs
 * it released (to dispatch). Run in a transaction that holds the users' account locks (lockAccounts),
 * as job creation does, after the change that freed a slot: the count it reads is then current.
 */
export async function admitWaitingJobs(tx: Tx, userIds: readonly string[]): Promise<JobRow[]> {
  return decodeRows([...(await executePrepared<Record<string, unknown>>(tx, admission(sql`${sql.param([...new Set(userIds)])}::uuid[]`)))]);
}

/** The statement of admitWaitingJobs, for the users in `users` (an expression of a uuid[]). */
export function admission(users: SQL) {
  return sql`
    with waiting as (
      -- Each user's first held jobs only, from the index in line order: no slot admits more than a
      -- tier's limit, and a user may have thousands waiting (each ending read them all before).
      select w.id, w.user_id, w.tier, w.place
      from (select distinct unnest(${users}) as user_id) u
      cross join lateral (
        select id, user_id, tier, row_number() over (order by queue_order, id) as place
        from jobs.jobs where user_id = u.user_id and status = 'queued' and held
        order by queue_order, id limit ${MOST_CONCURRENT_JOBS}
      ) w
    ), active as (
      select user_id, count(*)::int as n from jobs.jobs
      where user_id = any(${users}) and status in ('queued', 'running') and not held
        -- Counted only when a job waits (checked once): most endings have none, and then nothing is read (ADR 041).
        and exists (select from waiting)
      group by user_id
    )
    update jobs.jobs j set held = false, updated_at = now()
    from waiting w left join active a on a.user_id = w.user_id
    where j.id = w.id and j.held and j.status = 'queued'
      and coalesce(a.n, 0) + w.place <= (${concurrencyLimits}::jsonb ->> coalesce(w.tier, 'enterprise'))::int
    returning j.*`;
}

/** admitWaitingJobs in a transaction of its own, under the users' account locks (both statements in one round trip). */
export function admitWaitingJobsNow(db: Db, userIds: readonly string[]): Promise<JobRow[]> {
  return db.transaction(async (tx) => (await Promise.all([lockAccounts(tx, userIds), admitWaitingJobs(tx, userIds)]))[1]);
}

/**
 * Users with a held job and a free slot: an ending whose admission was lost (a crash between a cancel
 * and its admission). The reconciler asks at every pass, so it reads a few index entries per user with
 * held jobs, not every held job: the users one by one from the index (each step the next user_id with
 * a held job), each one's first job in line, and at most a tier's limit of its jobs holding a slot.
 * The first job's tier decides, as admission (admitWaitingJobs) decides for it; that admission is exact.
 */
export async function usersWithFreeSlots(db: Db, limit = 100): Promise<string[]> {
  return [...(await db.execute<{ user_id: string }>(freeSlotsSweep(limit)))].map((r) => r.user_id);
}

/** The statement of usersWithFreeSlots. */
export function freeSlotsSweep(limit: number) {
  return sql`
    with recursive waiting(user_id) as (
      (select user_id from jobs.jobs where status = 'queued' and held order by user_id limit 1)
      union all
      select (select j.user_id from jobs.jobs j where j.status = 'queued' and j.held and j.user_id > w.user_id order by j.user_id limit 1)
      from waiting w where w.user_id is not null
    )
    select w.user_id from waiting w
    cross join lateral (
      select f.tier from jobs.jobs f where f.user_id = w.user_id and f.status = 'queued' and f.held order by f.queue_order, f.id limit 1
    ) first
    where w.user_id is not null
      and (select count(*) from (
            select from jobs.jobs a where a.user_id = w.user_id and a.status in ('queued', 'running') and not a.held limit ${MOST_CONCURRENT_JOBS}
          ) slots) < (${concurrencyLimits}::jsonb ->> coalesce(first.tier, 'enterprise'))::int
    limit ${limit}`;
}

/**
 * Held jobs' places among their owners' waiting jobs (1 starts next), by id. Only jobs still held when
 * counted: one admitted since its row was read has no place in that line (it counted 0 there, which
 * the Job contract refuses: a list racing an admission answered 500).
 */
export async function queuePositions(conn: Conn, rows: readonly JobRow[]): Promise<Map<string, number>> {
  const ids = rows.filter((r) => r.held && r.status === "queued").map((r) => r.id);
  if (ids.length === 0) return new Map();
  const found = await executePrepared<{ id: string; place: number }>(conn, sql`
    select h.id, (select count(*) from jobs.jobs w
                  where w.user_id = h.user_id and w.status = 'queued' and w.held and (w.queue_order, w.id) <= (h.queue_order, h.id))::int as place
    from jobs.jobs h where h.id = any(${sql.param(ids)}::uuid[]) and h.status = 'queued' and h.held`);
  return new Map([...found].map((r) => [r.id, Number(r.place)]));
}

/** A user's held jobs in order, with their places: their queued events say where they stand. */
export async function waitingJobs(conn: Conn, userId: string, limit = 100): Promise<(Pick<JobRow, "id" | "projectId" | "lastEventSeq"> & { position: number })[]> {
  const rows = await executePrepared<{ id: string; project_id: string | null; last_event_seq: number; place: number }>(conn, sql`
    select id, project_id, last_event_seq, row_number() over (order by queue_order, id)::int as place
    from jobs.jobs where user_id = ${userId} and status = 'queued' and held
    order by queue_order, id limit ${limit}`);
  return [...rows].map((r) => ({ id: r.id, projectId: r.project_id, lastEventSeq: Number(r.last_event_seq), position: Number(r.place) }));
}

/**
 * A multi-row insert of jobs (`on conflict do nothing`), returning the rows inserted. The rows go
 * as one JSON parameter and come back mapped by the columns' own decoders: Drizzle's insert builds
 * and checks every value of every row, which cost more CPU than the rest of a batch (ADR 027).
 */
async function insertJobRows(tx: Tx, rows: readonly NewJob[]): Promise<JobRow[]> {
  const given = jobColumns.filter(([key]) => rows.some((r) => r[key as keyof NewJob] !== undefined));
  const names = sql.raw(given.map(([, col]) => `"${col.name}"`).join(", "));
  const json = JSON.stringify(rows.map((r) => Object.fromEntries(given.map(([key, col]) => [col.name, r[key as keyof NewJob] ?? null]))));
  // Prepared (ADR 044): one text per set of columns given, of which there are few.
  const inserted = await executePrepared<Record<string, unknown>>(tx, sql`
    insert into jobs.jobs (${names})
    select ${names} from json_populate_recordset(null::jobs.jobs, ${json}::json)
    on conflict do nothing
    returning *`);
  return decodeRows([...inserted]);
}

/** A job's idempotency key was taken by a job of another id (made before job ids came from keys); nothing committed. */
export class KeyTaken extends Error {
  constructor() {
    super("idempotency key taken");
  }
}

/** The SQLSTATE of a driver error, which drizzle may wrap in its own. */
function sqlState(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === "string") return e.code;
  }
  return undefined;
}

export async function getJob(db: Db, id: string): Promise<JobRow | null> {
  const [row] = await db.select().from(jobs).where(eq(jobs.id, id));
  return row ?? null;
}

export async function getUserJob(db: Db, userId: string, id: string): Promise<JobRow | null> {
  const [row] = await db.select().from(jobs).where(and(eq(jobs.id, id), eq(jobs.userId, userId)));
  return row ?? null;
}

export async function getJobByIdempotencyKey(db: Db, userId: string, key: string): Promise<JobRow | null> {
  const [row] = await db.select().from(jobs).where(and(eq(jobs.userId, userId), eq(jobs.idempotencyKey, key)));
  return row ?? null;
}

/**
 * The jobs of many (user, idempotency key) pairs in one query, in their order (null where none):
 * by the id the key names (jobIdFor), or by the pair for a job made before ids came from keys.
 */
export async function getJobsByIdempotencyKeys(db: Db, keys: readonly { userId: string; key: string; id: string }[]): Promise<(JobRow | null)[]> {
  // Ids first (nearly always none): the whole rows only for the hits.
  const hits = await db.execute<{ id: string }>(sql`
    select id from jobs.jobs
    where id = any(${sql.param(keys.map((k) => k.id))}::uuid[])
       or (user_id, idempotency_key) in (select * from unnest(${sql.param(keys.map((k) => k.userId))}::uuid[], ${sql.param(keys.map((k) => k.key))}::text[]))`);
  if (hits.length === 0) return keys.map(() => null);
  const rows = await db.select().from(jobs).where(inArray(jobs.id, [...hits].map((h) => h.id)));
  return keys.map((k) => rows.find((r) => r.id === k.id) ?? rows.find((r) => r.userId === k.userId && r.idempotencyKey === k.key) ?? null);
}

/** The jobs among `ids`, read whole only when there are any (a keyed batch's retries). */
async function existingJobs(conn: Conn, ids: readonly string[]): Promise<JobRow[]> {
  if (ids.length === 0) return [];
  const hits = await executePrepared<{ id: string }>(conn, sql`select id from jobs.jobs where id = any(${sql.param([...ids])}::uuid[])`);
  return hits.length === 0 ? [] : conn.select().from(jobs).where(inArray(jobs.id, [...hits].map((h) => h.id)));
}

export async function listJobs(db: Db, userId: string, q: ListJobsQuery) {
  const where = and(
    eq(jobs.userId, userId),
    q.status ? eq(jobs.status, q.status) : undefined,
    q.type ? eq(jobs.type, q.type) : undefined,
    q.project_id ? eq(jobs.projectId, q.project_id) : undefined,
    // A substring in any case; the pattern's own wildcards are taken literally.
    q.display_name ? sql`${jobs.displayName} ilike ${`%${q.display_name.replace(/[\\%_]/g, (c) => `\\${c}`)}%`}` : undefined,
    // Each top-level key equal to the value as text (->> writes a number or boolean as JSON does).
    ...Object.entries(q.metadata ?? {}).map(([key, value]) => sql`${jobs.metadata} ->> ${key} = ${value}`),
  );
  const [rows, counted] = await Promise.all([
    db.select().from(jobs).where(where).orderBy(desc(jobs.createdAt), desc(jobs.id)).limit(q.limit).offset(q.offset),
    db.select({ total: sql<number>`count(*)::int` }).from(jobs).where(where),
  ]);
  return { rows, total: counted[0]?.total ?? 0 };
}

/**
 * Records that dispatch number `dispatch` reached the broker as JOBS message `seq`; a stale writer
 * changes nothing.
 */
export async function markDispatched(db: Conn, id: string, dispatch: number, seq: number): Promise<void> {
  await db
    .update(jobs)
    .set({ dispatchCount: dispatch, dispatchSeq: seq, dispatchedAt: sql`now()` })
    .where(and(eq(jobs.id, id), sql`${jobs.dispatchCount} < ${dispatch}`));
}

/** markDispatched for many jobs in one statement, of one text whatever their number (arrays, ADR 034). */
export async function markDispatchedMany(db: Conn, marks: readonly { id: string; dispatch: number; seq: number }[]): Promise<void> {
  if (marks.length === 0) return;
  await executePrepared(db, dispatchMarks(marks));
}

/**
 * The statement of markDispatchedMany. The rows are found by `id = any(…)`: joined to the `unnest` alone,
 * a generic plan expects a hundred marks and reads the whole table to hash it.
 */
export function dispatchMarks(marks: readonly { id: string; dispatch: number; seq: number }[]) {
  return sql`
    update jobs.jobs j set dispatch_count = v.dispatch, dispatch_seq = v.seq, dispatched_at = now()
    from unnest(${sql.param(marks.map((m) => m.id))}::uuid[], ${sql.param(marks.map((m) => m.dispatch))}::int[], ${sql.param(marks.map((m) => String(m.seq)))}::text[]::bigint[]) as v(id, dispatch, seq)
    where j.id = any(${sql.param(marks.map((m) => m.id))}::uuid[]) and j.id = v.id and j.dispatch_count < v.dispatch`;
}

/** Cancels a queued or running job of the user; null when there is none in those states. */
export async function cancelJob(db: Db, userId: string, id: string, error: JobError): Promise<JobRow | null> {
  const [row] = await db
    .update(jobs)
    .set({ status: "canceled", error, completedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(jobs.id, id), eq(jobs.userId, userId), inArray(jobs.status, ["queued", "running"])))
    .returning();
  return row ? countEnded(row) : null;
}

export async function setCreditState(db: Conn, id: string, state: JobRow["creditState"]): Promise<JobRow | null> {
  const [row] = await db.update(jobs).set({ creditState: state, updatedAt: sql`now()` }).where(eq(jobs.id, id)).returning();
  return row ?? null;
}

const fromNow = (ms: number) => sql`now() + make_interval(secs => ${ms / 1000})`;
const ago = (ms: number) => sql`now() - make_interval(secs => ${ms / 1000})`;

/**
 * The one gate before work starts. A running job whose holder is gone moves to running under a fresh
 * lease: its lease ran out (it died), or the very message it was claimed by comes back (JetStream
 * redelivers only after a nak, a shutdown or a missed ack deadline). Otherwise the message is a turn
 * of its worker queue (ADR 039): the due queued job of that queue served first (lowest run_order, a
 * high job's earlier by the aging interval) is claimed, the named job itself unless another is
 * strictly ahead of it. One statement, as before. Null when nothing is claimable.
 */
export async function claimJob(db: Db, id: string, dispatch: number, leaseMs: number): Promise<JobRow | null> {
  const claimable = sql`((j.status = 'queued' and not j.held and (j.next_attempt_at is null or j.next_attempt_at <= now()) and (j.start_by is null or j.start_by > now() or j.started_at is not null))
      or (j.status = 'running' and (coalesce(j.lease_until, '-infinity') < now() or (j.claimed_dispatch = ${dispatch} and coalesce(j.claimed_via, j.id) = ${id}::uuid))))`;
  const statement = sql`
    with hint as (
      select j.id, j.queue, j.run_order, j.status, ${claimable} as own from jobs.jobs j where j.id = ${id}::uuid
    ), via as (
      select j.id from jobs.jobs j where j.claimed_via = ${id}::uuid and j.claimed_dispatch = ${dispatch} and j.status = 'running'
    ), better as (
      select j.id from jobs.jobs j, hint h
      where j.queue = h.queue and j.status = 'queued' and not j.held and j.id <> h.id
        and (j.next_attempt_at is null or j.next_attempt_at <= now()) and (j.start_by is null or j.start_by > now() or j.started_at is not null)
        -- Ahead of the message's own job; or any, when its job has been taken or ended (its message is then a turn
        -- for the job it was skipped for). A held or not yet due job has no turn of its own: nothing is picked for it.
        and ((h.own and h.status = 'queued' and j.run_order < h.run_order) or (not h.own and h.status <> 'queued'))
      order by j.run_order, j.id limit 1
      for update of j skip locked
    ), pick as (
      select coalesce((select id from via), (select id from hint where own and status = 'running'), (select id from better), (select id from hint where own)) as id
    )
    update jobs.jobs j set
      status = 'running', attempts = j.attempts + 1, started_at = coalesce(j.started_at, now()),
      lease_until = ${fromNow(leaseMs)}, claimed_dispatch = ${dispatch},
      claimed_via = case when j.id = ${id}::uuid then null else ${id}::uuid end,
      run_deadline = case when j.timeout_s is null then null else now() + make_interval(secs => j.timeout_s) end,
      next_attempt_at = null, updated_at = now()
    from pick where j.id = pick.id and ${claimable}
    returning j.*`;
  let rows = await executePrepared<Record<string, unknown>>(db, statement);
  // The message's own job may have been taken, while this statement waited for its lock, by another
  // message's claim that served it first: this message is then the turn of that message's job. The
  // statement read the queue before the wait, so it is run once more (READ COMMITTED: a fresh snapshot).
  if (rows.length === 0) rows = await executePrepared<Record<string, unknown>>(db, statement);
  const [row] = decodeRows([...rows]);
  return row ? countStarted(row) : null;
}

/**
 * Records the outcome reported by the worker holding the claim and settles its credits (capture on
 * success, release on failure) in the same transaction: the ending and the credits commit together,
 * without a call to billing-service (ADR 028). Null when the job is no longer running under that
 * dispatch (canceled meanwhile, or finished by an earlier report); nothing is settled then.
 */
export async function finishJob(
  db: Db,
  id: string,
  dispatch: number,
  outcome: FinishBody["outcome"],
  providerCostUsd?: number,
  retry?: RetryPolicy,
): Promise<{ ended: (JobRow & { retryInMs?: number }) | null; admitted: JobRow[] }> {
  if (outcome.status === "failed" && outcome.retryable && retry) {
    const requeued = await requeueForRetry(db, id, dispatch, outcome.error, retry, providerCostUsd);
    if (requeued) return { ended: requeued, admitted: [] };
  }
  const capture = outcome.status === "succeeded";
  const patch = capture
    ? // Every stage done: a quick job's worker publishes no stage events, its result says it all (ADR 028).
      sql`result = ${JSON.stringify(outcome.result)}::jsonb, progress = 100, stage = null,
        stages = (select coalesce(jsonb_agg(s.e || '{"status":"done"}' order by s.i), '[]') from jsonb_array_elements(j.stages) with ordinality as s(e, i))`
    : outcome.retryable
      ? // A retryable failure with no attempt left (ADR 039): the owner reads how many were made.
        sql`error = jsonb_build_object('code', ${outcome.error.code}::text, 'message', ${outcome.error.message}::text || ' (after ' || j.attempts || ' attempts)')`
      : sql`error = ${JSON.stringify(outcome.error)}::jsonb`;
  const refund = capture ? sql`0` : sql`coalesce(r.amount, 0)`;
  // One statement ends the row and settles its reservation (ADR 041), as settle() did in five: the row is
  // locked first, then the account (the order the reconciler's settles take). Any settle of a job follows
  // its ending, which this row's lock makes ours alone; ledger_job_settle_uq refuses a second one anyway.
  // credit_state is what the ledger says after it: a settle already made, else this one, else none held.
  const end = sql`
    with ended as (
      update jobs.jobs j set status = ${outcome.status}, ${patch},
        credit_state = coalesce(
          (select case s.kind when 'capture' then 'captured' else 'released' end from billing.ledger s where s.job_id = j.id and s.kind in ('capture', 'release')),
          (select ${capture ? "captured" : "released"}::text from billing.ledger r where r.job_id = j.id and r.kind = 'reserve'),
          'released'),
        -- Added to what earlier attempts' model runs cost (a retried job, ADR 039).
        provider_cost_usd = case when ${providerCostUsd ?? null}::float8 is null then j.provider_cost_usd else coalesce(j.provider_cost_usd, 0) + ${providerCostUsd ?? null}::float8 end,
        completed_at = now(), updated_at = now()
      where j.id = ${id}::uuid and j.status = 'running' and j.claimed_dispatch = ${dispatch}
      returning j.*
    ), reserve as (
      select r.user_id, -r.amount as amount from ended e join billing.ledger r on r.job_id = e.id and r.kind = 'reserve'
      where not exists (select 1 from billing.ledger s where s.job_id = e.id and s.kind in ('capture', 'release'))
    ), account as (
      update billing.accounts a set available = a.available + ${refund}, reserved = a.reserved - coalesce(r.amount, 0), updated_at = now()
      from ended e left join reserve r on r.user_id = e.user_id
      where a.user_id = e.user_id
      returning a.user_id
    ), settled as (
      insert into billing.ledger (id, user_id, kind, amount, job_id, note)
      select gen_random_uuid(), r.user_id, ${capture ? "capture" : "release"}, ${refund}, ${id}::uuid, ${capture ? sql`'captured ' || r.amount` : sql`null`}
      from reserve r join account using (user_id)
    )
    select * from ended`;
  // The slot it held goes to its owner's next waiting job in the same commit (ADR 031), counted under the
  // owner's account lock (the ending took it; taken here when nothing ended, a finish repeated). All in one
  // round trip with the begin and the commit (ADR 050): nothing here waits for an answer of the one before.
  const owner = sql`array(select user_id from jobs.jobs where id = ${id}::uuid)`;
  const [ended, , admitted] = await transactionInOneTrip(db, [
    end,
    sql`select user_id from billing.accounts where user_id = any(${owner}) for update`,
    admission(owner),
  ]);
  const [row] = decodeRows([...ended!]);
  return { ended: row ? countEnded(row) : null, admitted: decodeRows([...admitted!]) };
}

/** Applies one job event to its row (see applyEvent); an event from a running job's worker extends its lease. */
export async function applyEventToJob(db: Db, event: JobEvent, leaseMs: number): Promise<JobRow | null> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(jobs).where(eq(jobs.id, event.job_id)).for("update");
    if (!row) return null;
    const patch = applyEvent(row, event);
    if (!patch) return row;
    const [updated] = await tx
      .update(jobs)
      .set({ ...patch, updatedAt: sql`now()`, ...(row.status === "running" ? { leaseUntil: fromNow(leaseMs) } : {}) })
      .where(eq(jobs.id, row.id))
      .returning();
    return updated ?? null;
  });
}

/**
 * Raises each job's last_event_seq to the seq of an event job-service published itself (a status, an
 * ending), where the row is behind it: the row is the floor other publishers number from when the
 * broker lost the stored events (a cancel or an admission on a replica that never saw them). Only
 * that column; the event's meaning is written by the claim, finish or admission that published it.
 */
export async function raiseEventSeqs(db: Db, seqs: readonly { id: string; seq: number }[]): Promise<void> {
  if (seqs.length === 0) return;
  const ordered = [...seqs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  await executePrepared(db, sql`
    update jobs.jobs j set last_event_seq = v.seq
    from unnest(${sql.param(ordered.map((s) => s.id))}::uuid[], ${sql.param(ordered.map((s) => s.seq))}::int[]) as v(id, seq)
    where j.id = v.id and j.last_event_seq < v.seq`);
}

/** The rows a batch of events may change, as they are now; unlocked, since writeEventPatches checks that nothing moved since. */
export async function readEventTargets(db: Db, ids: string[]): Promise<Pick<JobRow, "id" | "status" | "stages" | "lastEventSeq">[]> {
  // An array parameter: one statement text whatever the batch's size (ADR 034), prepared (ADR 043).
  const rows = await executePrepared<{ id: string; status: JobRow["status"]; stages: JobRow["stages"]; last_event_seq: number }>(
    db,
    sql`select id, status, stages, last_event_seq from jobs.jobs where id = any(${sql.param(ids)}::uuid[])`,
  );
  return rows.map((r) => ({ id: r.id, status: r.status, stages: r.stages, lastEventSeq: r.last_event_seq }));
}

/** What a batch of events changes in one job: the events' patches folded onto the row as it was read. */
export interface EventsPatch {
  id: string;
  was: Pick<JobRow, "status" | "lastEventSeq">;
  patch: JobPatch;
}

/**
 * Writes many jobs' patches in one statement, each only where its row is still as it was read (same
 * last_event_seq and status): a claim, a finish or another replica in between makes it miss, and the
 * caller applies that job's events one by one instead. An event of a running job extends its lease.
 * Returns the rows written.
 */
export async function writeEventPatches(db: Db, patches: EventsPatch[], leaseMs: number): Promise<Pick<JobRow, "id" | "lastEventSeq" | "pipelineId" | "pipelineStage">[]> {
  if (patches.length === 0) return [];
  const values = patches.map(({ id, was, patch }) => ({
    id,
    was_seq: was.lastEventSeq,
    was_status: was.status,
    last_event_seq: patch.lastEventSeq,
    progress: patch.progress ?? null,
    stage: patch.stage ?? null,
    stages: patch.stages ?? null,
  }));
  const rows = await executePrepared<{ id: string; last_event_seq: number; pipeline_id: string | null; pipeline_stage: string | null }>(db, sql`
    update jobs.jobs as j set
      last_event_seq = v.last_event_seq,
      progress = coalesce(v.progress, j.progress),
      stage = coalesce(v.stage, j.stage),
      stages = coalesce(v.stages, j.stages),
      lease_until = case when j.status = 'running' then ${fromNow(leaseMs)} else j.lease_until end,
      updated_at = now()
    from jsonb_to_recordset(${JSON.stringify(values)}::jsonb)
      as v(id uuid, was_seq integer, was_status text, last_event_seq integer, progress real, stage text, stages jsonb)
    -- The ids as an array too: the rows are found by their key, not by a scan joined to the recordset, whose size the planner cannot see (ADR 041).
    where j.id = any(${sql.param(patches.map((p) => p.id))}::uuid[]) and j.id = v.id and j.last_event_seq = v.was_seq and j.status = v.was_status
    returning j.id, j.last_event_seq, j.pipeline_id, j.pipeline_stage`);
  return rows.map((r) => ({ id: r.id, lastEventSeq: r.last_event_seq, pipelineId: r.pipeline_id, pipelineStage: r.pipeline_stage }));
}

/** Queued jobs that never reached the broker (the publish at enqueue failed), locked for this replica. */
export function lockUndispatchedJobs(tx: Tx, graceMs: number, limit = 100) {
  return tx
    .select()
    .from(jobs)
    // A retry waiting for its backoff is not dispatched before it is due (ADR 039).
    // jobs_undispatched_idx's condition written out: a generic plan cannot match a partial index to parameters.
    .where(and(sql`${jobs.status} = 'queued' and not ${jobs.held} and ${jobs.dispatchedAt} is null`, sql`${jobs.createdAt} < ${ago(graceMs)}`, sql`(${jobs.nextAttemptAt} is null or ${jobs.nextAttemptAt} <= now())`))
    .orderBy(asc(jobs.createdAt))
    .limit(limit)
    .for("update", { skipLocked: true });
}

/** Jobs waiting longer than they should: queued long after dispatch, or running long past their lease. */
export function lockOverdueJobs(tx: Tx, overdueMs: number, limit = 100) {
  return tx
    .select()
    .from(jobs)
    .where(
      or(
        and(eq(jobs.status, "queued"), sql`${jobs.dispatchedAt} < ${ago(overdueMs)}`),
        and(eq(jobs.status, "running"), sql`coalesce(${jobs.leaseUntil}, '-infinity') < ${ago(overdueMs)}`),
      ),
    )
    .orderBy(asc(jobs.createdAt))
    .limit(limit)
    .for("update", { skipLocked: true });
}

/** Finished jobs whose credits are still held, locked for this replica: a settle that failed (billing was down) is retried from here. */
export function lockUnsettledJobs(tx: Tx, graceMs: number, limit = 100) {
  return tx
    .select()
    .from(jobs)
    // jobs_unsettled_idx's condition written out, as above.
    .where(and(sql`${jobs.status} in ('succeeded', 'failed', 'canceled') and ${jobs.creditState} = 'reserved'`, sql`${jobs.completedAt} < ${ago(graceMs)}`))
    .orderBy(asc(jobs.completedAt))
    .limit(limit)
    .for("update", { skipLocked: true });
}

export async function jobStats(db: Db) {
  const [row] = await db
    .select({
      active: sql<number>`count(*) filter (where ${jobs.status} in ('queued', 'running'))::int`,
      completedToday: sql<number>`count(*) filter (where ${jobs.status} = 'succeeded' and ${jobs.completedAt} >= date_trunc('day', now()))::int`,
      averageSeconds: sql<number | null>`(avg(extract(epoch from ${jobs.completedAt} - ${jobs.startedAt})) filter (where ${jobs.status} = 'succeeded'))::float8`,
    })
    .from(jobs);
  return {
    active_jobs: row?.active ?? 0,
    completed_jobs_today: row?.completedToday ?? 0,
    average_processing_time_minutes: row?.averageSeconds == null ? null : Math.round((row.averageSeconds / 60) * 100) / 100,
  };
}
