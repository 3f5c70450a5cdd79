import { defaultJobControl, highPriorityTiers, jobControl, AppError, type Caller, type JobError, type JobPriority } from "@cutroom/contracts";
import { sqlTag as sql, type Db } from "@cutroom/db";
import { jobs } from "@cutroom/db/jobs";
import { lockAccounts, settle } from "@cutroom/ledger";
import { and, eq } from "@cutroom/db";
import { admitWaitingJobs, setCreditState, type JobRow, type NewJob } from "./job-store.ts";
import { countEnded } from "./job-metrics.ts";

/** Retries, priorities and deadlines (ADR 039): job-service's settings over the types' defaults. */
export interface RetryPolicy {
  /** The first retry's delay; each next one doubles (seed 001: 1, 2, 4, 8 s). */
  baseMs: number;
  maxMs: number;
  /** Up to this fraction of the delay is added at random, so retries of many jobs spread out. */
  jitter: number;
  /** Overrides every type's attempts when set. */
  maxAttempts?: number;
}

export interface JobControlSettings {
  retry: RetryPolicy;
  /** How much earlier a high job (later a low one) is served than a normal one of the same age. */
  agingMs: number;
}

export const defaultJobControlSettings: JobControlSettings = { retry: { baseMs: 1000, maxMs: 60_000, jitter: 0.2 }, agingMs: 60_000 };

/** The delay before attempt `failed + 1`, never below the exponential step (jitter only adds). */
export function backoffMs(failedAttempts: number, policy: RetryPolicy, random = Math.random): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, failedAttempts - 1));
  return Math.round(step * (1 + policy.jitter * random()));
}

const rank: Record<JobPriority, number> = { low: -1, normal: 0, high: 1 };

/**
 * The columns a new job's priority and deadlines set, from its request and its type's defaults.
 * 403 when the caller's tier may not ask for high.
 */
export function controlColumns(
  body: { type: string; priority?: JobPriority | undefined; start_within_s?: number | undefined; timeout_s?: number | undefined },
  caller: Pick<Caller, "tier">,
  settings: JobControlSettings,
  now = Date.now(),
): Pick<NewJob, "priority" | "runOrder" | "maxAttempts" | "startBy" | "timeoutS"> {
  const priority = body.priority ?? "normal";
  if (priority === "high" && !highPriorityTiers.includes(caller.tier)) {
    throw new AppError("FORBIDDEN", `high priority is for the pro and enterprise tiers; this account is on ${caller.tier}`, { reason: "priority", tier: caller.tier, priority });
  }
  const defaults = jobControl(body.type);
  return {
    priority,
    runOrder: new Date(now - rank[priority] * settings.agingMs),
    maxAttempts: settings.retry.maxAttempts ?? defaults.maxAttempts,
    startBy: new Date(now + (body.start_within_s ?? defaults.startWithinS) * 1000),
    timeoutS: body.timeout_s ?? defaults.timeoutS,
  };
}

/**
 * A retryable failure of the run holding the claim, with attempts left: the job goes back queued,
 * undispatched until `next_attempt_at` (the caller's timer or the reconciler dispatches it then). Its
 * credits stay reserved. Null when it has no attempt left or is no longer this run's.
 */
export async function requeueForRetry(db: Db, id: string, dispatch: number, error: JobError, policy: RetryPolicy, providerCostUsd?: number): Promise<(JobRow & { retryInMs: number }) | null> {
  const [current] = await db.select({ attempts: jobs.attempts, maxAttempts: jobs.maxAttempts, type: jobs.type }).from(jobs).where(eq(jobs.id, id));
  if (!current) return null;
  const max = current.maxAttempts ?? policy.maxAttempts ?? jobControl(current.type).maxAttempts;
  if (current.attempts >= max) return null;
  const delay = backoffMs(current.attempts, policy);
  const [row] = await db
    .update(jobs)
    .set({
      status: "queued",
      error,
      progress: 0,
      stage: null,
      leaseUntil: null,
      runDeadline: null,
      claimedVia: null,
      dispatchedAt: null,
      nextAttemptAt: sql`now() + make_interval(secs => ${delay / 1000})`,
      // What the failed run's models cost is kept: the job's total grows with each attempt.
      ...(providerCostUsd !== undefined ? { providerCostUsd: sql`coalesce(${jobs.providerCostUsd}, 0) + ${providerCostUsd}` } : {}),
      updatedAt: sql`now()`,
    })
    .where(and(eq(jobs.id, id), eq(jobs.status, "running"), eq(jobs.claimedDispatch, dispatch), eq(jobs.attempts, current.attempts)))
    .returning();
  return row ? { ...row, retryInMs: delay } : null;
}

/** A due retry, locked for this replica, or null (dispatched meanwhile, canceled, not due). */
export async function lockDueRetry(tx: Parameters<Parameters<Db["transaction"]>[0]>[0], id: string): Promise<JobRow | null> {
  const [row] = await tx
    .select()
    .from(jobs)
    .where(and(eq(jobs.id, id), eq(jobs.status, "queued"), eq(jobs.held, false), sql`${jobs.dispatchedAt} is null`, sql`${jobs.nextAttemptAt} <= now()`))
    .for("update", { skipLocked: true });
  return row ?? null;
}

/** The statement of endOverdueJobs' search: the jobs past a deadline, locked for this replica. */
export function overdueJobs(limit: number) {
  return sql`
      select j.id, j.status, j.user_id, coalesce(j.run_deadline < now(), false) as timed_out, j.attempts, coalesce(j.max_attempts, ${defaultJobControl.maxAttempts}) as max_attempts
      from jobs.jobs j
      -- A job waiting for its retry was started: its start window is behind it.
      where (j.status = 'queued' and j.start_by < now() and j.started_at is null) or (j.status = 'running' and j.run_deadline < now())
        -- Its lease (a negative dispatch) ran out and no attempt is left for the next lease to take it (worker-leases.ts).
        or (j.status = 'running' and j.claimed_dispatch < 0 and j.attempts >= coalesce(j.max_attempts, ${defaultJobControl.maxAttempts})
          and exists (select 1 from jobs.worker_leases l where l.job_id = j.id and l.dispatch = j.claimed_dispatch and l.expires_at < now()))
      order by j.id limit ${limit} for update of j skip locked`;
}

/**
 * Ends jobs past a deadline: queued ones never started by their start_by (EXPIRED), running ones past their run's
 * deadline (TIMEOUT), and running ones whose lease over HTTP (ADR 040) ran out on their last attempt (WORKER_LOST:
 * without this, a job whose worker dies every time would be leased again without end). Each with its credits
 * released in the same commit and its owner's slot handed on. Answers the ended rows and the jobs given their slots.
 */
export async function endOverdueJobs(db: Db, limit = 100): Promise<{ ended: JobRow[]; admitted: JobRow[] }> {
  return db.transaction(async (tx) => {
    const found = await tx.execute<{ id: string; status: string; user_id: string; timed_out: boolean; attempts: number; max_attempts: number }>(overdueJobs(limit));
    if (found.length === 0) return { ended: [], admitted: [] };
    const userIds = [...new Set([...found].map((r) => r.user_id))];
    await lockAccounts(tx, userIds);
    const ended: JobRow[] = [];
    for (const f of found) {
      const error: JobError =
        f.status === "queued"
          ? { code: "EXPIRED", message: "no worker started the job before its start_within_s ran out" }
          : f.timed_out
            ? { code: "TIMEOUT", message: "the run took longer than the job's timeout_s and was canceled" }
            : { code: "WORKER_LOST", message: `no worker finished this job in ${f.attempts} attempts: the lease of attempt ${f.attempts} of ${f.max_attempts} ran out (its worker over HTTP stopped renewing it)` };
      const [row] = await tx
        .update(jobs)
        .set({ status: "failed", error, creditState: "released", completedAt: sql`now()`, updatedAt: sql`now()` })
        .where(and(eq(jobs.id, f.id), eq(jobs.status, f.status as "queued" | "running")))
        .returning();
      if (!row) continue;
      const { state } = await settle(tx, row.id, "release");
      ended.push(state === "captured" ? ((await setCreditState(tx, row.id, "captured")) ?? row) : row);
    }
    const admitted = await admitWaitingJobs(tx, userIds);
    for (const row of ended) countEnded(row);
    return { ended, admitted };
  });
}
