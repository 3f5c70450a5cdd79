import { AppError, type FinishBody, type Job, type JobError, type JobEvent, type ListJobsQuery } from "@cutroom/contracts";
import { and, asc, desc, eq, inArray, isNull, or, sqlTag as sql, type Db } from "@cutroom/db";
import { jobs } from "@cutroom/db/jobs";
import { reserve } from "@cutroom/ledger";
import { rpcTimedOut } from "@cutroom/runtime";
import { applyEvent } from "./apply-event.ts";
import { lockLiveProject } from "./project-store.ts";

export type JobRow = typeof jobs.$inferSelect;
export type NewJob = typeof jobs.$inferInsert;
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
/** The pool or an open transaction: the reconciler calls these with the rows it has locked. */
export type Conn = Db | Tx;

/** The public shape of a row. */
export function toJob(row: JobRow): Job {
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
    provider_cost_usd: row.providerCostUsd,
    project_id: row.projectId,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    started_at: row.startedAt?.toISOString() ?? null,
    completed_at: row.completedAt?.toISOString() ?? null,
  };
}

const keyTaken = new Error("idempotency key taken");
const projectGone = new Error("project not found");
const tooLate = new Error("past the caller's deadline");
// lock_not_available (lock_timeout) and query_canceled (statement_timeout).
const TIMED_OUT = new Set(["55P03", "57014"]);

/**
 * Reserves the job's credits and inserts the job in one transaction: both commit or neither (ADR 019),
 * so no crash, stall or failed insert leaves credits held for a job that does not exist. Null when
 * (user, idempotency key) is taken already; the reservation is rolled back with the insert.
 *
 * With `commitBy` (epoch ms), nothing commits after it: no statement or lock wait may run past it,
 * and a transaction still open then rolls back. Its caller has told its client 503 by then, and a
 * client without an Idempotency-Key that retries would get a second job. Throws the caller's own
 * timeout error (503 SERVICE_UNAVAILABLE) instead.
 *
 * A job in a project holds the project live until it commits (404 NOT_FOUND when it is not): a
 * project deleted meanwhile waits for it, then cancels it with the rest.
 */
export async function insertReservedJob(db: Db, job: NewJob, commitBy?: number): Promise<JobRow | null> {
  const left = () => (commitBy === undefined ? Infinity : Math.floor(commitBy - Date.now()));
  if (left() <= 0) throw rpcTimedOut("job");
  try {
    return await db.transaction(async (tx) => {
      if (commitBy !== undefined) {
        // SET takes no parameters; set_config(…, true) is its SET LOCAL. Both end with the transaction.
        const ms = `${Math.max(1, left())}ms`;
        await tx.execute(sql`select set_config('lock_timeout', ${ms}, true), set_config('statement_timeout', ${ms}, true)`);
      }
      if (job.projectId && !(await lockLiveProject(tx, job.userId, job.projectId))) throw projectGone;
      await reserve(tx, job.userId, job.id, job.credits);
      const [row] = await tx.insert(jobs).values(job).onConflictDoNothing().returning();
      if (!row) throw keyTaken;
      if (left() <= 0) throw tooLate;
      return row;
    });
  } catch (err) {
    if (err === keyTaken) return null;
    if (err === projectGone) throw new AppError("NOT_FOUND", "project not found", { project_id: job.projectId });
    if (err === tooLate || (commitBy !== undefined && TIMED_OUT.has(sqlState(err) ?? ""))) throw rpcTimedOut("job");
    throw err;
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

export async function listJobs(db: Db, userId: string, q: ListJobsQuery) {
  const where = and(
    eq(jobs.userId, userId),
    q.status ? eq(jobs.status, q.status) : undefined,
    q.type ? eq(jobs.type, q.type) : undefined,
    q.project_id ? eq(jobs.projectId, q.project_id) : undefined,
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

/** Cancels a queued or running job of the user; null when there is none in those states. */
export async function cancelJob(db: Db, userId: string, id: string, error: JobError): Promise<JobRow | null> {
  const [row] = await db
    .update(jobs)
    .set({ status: "canceled", error, completedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(jobs.id, id), eq(jobs.userId, userId), inArray(jobs.status, ["queued", "running"])))
    .returning();
  return row ?? null;
}

export async function setCreditState(db: Conn, id: string, state: JobRow["creditState"]): Promise<JobRow | null> {
  const [row] = await db.update(jobs).set({ creditState: state, updatedAt: sql`now()` }).where(eq(jobs.id, id)).returning();
  return row ?? null;
}

const fromNow = (ms: number) => sql`now() + make_interval(secs => ${ms / 1000})`;
const ago = (ms: number) => sql`now() - make_interval(secs => ${ms / 1000})`;

/**
 * The one gate before work starts: a queued job, or a running one whose holder is gone, moves to
 * running under a fresh lease. The holder is gone when its lease ran out (it died) or when the very
 * dispatch it claimed comes back: JetStream redelivers a message only after a nak (a retry, a
 * shutdown) or a missed ack deadline. Null when the job is not claimable.
 */
export async function claimJob(db: Db, id: string, dispatch: number, leaseMs: number): Promise<JobRow | null> {
  const [row] = await db
    .update(jobs)
    .set({
      status: "running",
      attempts: sql`${jobs.attempts} + 1`,
      startedAt: sql`coalesce(${jobs.startedAt}, now())`,
      leaseUntil: fromNow(leaseMs),
      claimedDispatch: dispatch,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        eq(jobs.id, id),
        or(
          eq(jobs.status, "queued"),
          and(eq(jobs.status, "running"), or(sql`coalesce(${jobs.leaseUntil}, '-infinity') < now()`, eq(jobs.claimedDispatch, dispatch))),
        ),
      ),
    )
    .returning();
  return row ?? null;
}

/**
 * Records the outcome reported by the worker holding the claim; null when the job is no longer
 * running under that dispatch (canceled meanwhile, or finished by an earlier report).
 */
export async function finishJob(db: Db, id: string, dispatch: number, outcome: FinishBody["outcome"], providerCostUsd?: number): Promise<JobRow | null> {
  const patch =
    outcome.status === "succeeded"
      ? { status: "succeeded" as const, result: outcome.result, progress: 100, stage: null }
      : { status: "failed" as const, error: outcome.error };
  const [row] = await db
    .update(jobs)
    .set({ ...patch, ...(providerCostUsd !== undefined ? { providerCostUsd } : {}), completedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(jobs.id, id), eq(jobs.status, "running"), eq(jobs.claimedDispatch, dispatch)))
    .returning();
  return row ?? null;
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

/** Queued jobs that never reached the broker (the publish at enqueue failed), locked for this replica. */
export function lockUndispatchedJobs(tx: Tx, graceMs: number, limit = 100) {
  return tx
    .select()
    .from(jobs)
    .where(and(eq(jobs.status, "queued"), isNull(jobs.dispatchedAt), sql`${jobs.createdAt} < ${ago(graceMs)}`))
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
    .where(and(inArray(jobs.status, ["succeeded", "failed", "canceled"]), eq(jobs.creditState, "reserved"), sql`${jobs.completedAt} < ${ago(graceMs)}`))
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
