import type { Db } from "@cutroom/db";
import { orphanReservations, settle } from "@cutroom/ledger";
import { subjects } from "@cutroom/contracts";
import type { JobEventPublisher, Logger, NatsConnection, RpcClient } from "@cutroom/runtime";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { createAdmission } from "./admission.ts";
import { settleCredits } from "./credits.ts";
import { dispatchHeld, dispatchJob } from "./dispatch.ts";
import { createEndingsAnnouncer } from "./endings.ts";
import type { Timing } from "./env.ts";
import { endOverdueJobs } from "./job-control.ts";
import { lockOverdueJobs, lockUndispatchedJobs, lockUnsettledJobs } from "./job-store.ts";
import type { PipelineEngine } from "./pipelines.ts";

export interface ReconcilerDeps {
  db: Db;
  js: JetStreamClient;
  jsm: JetStreamManager;
  rpc: RpcClient;
  log: Logger;
  timing: Timing;
  /** Publishes the endings whose terminal event never reached the stream; absent: not checked here. */
  events?: JobEventPublisher;
  /** Advances pipelines whose advance was lost (ADR 025); absent: none are run here. */
  pipelines?: Pick<PipelineEngine, "reconcile">;
  /** Where a timed-out run's cancel is published, so its worker stops; absent: the worker learns it at its finish. */
  nc?: NatsConnection;
}

/**
 * Fails the jobs past a deadline (ADR 039): EXPIRED for a queued job no worker started by its start_by,
 * TIMEOUT for a run past its timeout_s, whose worker is told to stop as a cancel tells it; WORKER_LOST for a
 * job whose lease over HTTP ran out on its last attempt (ADR 040). Credits are
 * released in the ending's commit; the owner hears the ending, and their next waiting jobs start.
 */
export async function endOverdue(deps: Pick<ReconcilerDeps, "db" | "js" | "log" | "events" | "nc">): Promise<number> {
  const { ended, admitted } = await endOverdueJobs(deps.db);
  for (const row of ended) {
    if (row.error?.code === "TIMEOUT") deps.nc?.publish(subjects.jobCancel(row.id), JSON.stringify({ job_id: row.id }));
    deps.log.info({ job_id: row.id, code: row.error?.code, attempts: row.attempts }, row.error?.code === "WORKER_LOST" ? "failed a job whose lease ran out on its last attempt" : "ended a job past its deadline");
    await deps.events
      ?.publish(row.id, { type: "error", status: "failed", error: row.error!, ...(row.projectId ? { project_id: row.projectId } : {}) }, { unlessEnded: true, floor: row.lastEventSeq })
      .catch((err) => deps.log.warn({ err, job_id: row.id }, "could not publish a job event"));
  }
  if (admitted.length > 0) await createAdmission({ db: deps.db, js: deps.js, log: deps.log, ...(deps.events ? { events: deps.events } : {}) }).started(admitted);
  return ended.length;
}

/**
 * Postgres is the truth and JetStream may lose messages: every replica runs this loop, and row locks
 * taken with `skip locked` keep two replicas off the same job.
 */
export function startReconciler(deps: ReconcilerDeps): { stop: () => Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> = Promise.resolve();
  let sweptAt = -Infinity;
  const announceEndings = deps.events && createEndingsAnnouncer({ ...deps, events: deps.events, graceMs: deps.timing.dispatchGraceMs });
  const pass = async () => {
    await reconcile(deps).catch((err) => deps.log.error({ err }, "reconcile pass failed"));
    await announceEndings?.().catch((err) => deps.log.error({ err }, "could not check that ended jobs' terminal events are stored"));
    // Once per grace, not every pass: a reservation is released only once older than the grace anyway.
    if (Date.now() - sweptAt < deps.timing.orphanGraceMs) return;
    sweptAt = Date.now();
    await releaseOrphanReservations(deps).catch((err) => deps.log.error({ err }, "orphan reservation sweep failed"));
  };
  const tick = () => {
    current = pass().finally(() => {
      if (!stopped) timer = setTimeout(tick, deps.timing.reconcileIntervalMs);
    });
  };
  timer = setTimeout(tick, deps.timing.reconcileIntervalMs);
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}

/** One pass: end jobs past their deadlines, start held jobs that have a free slot, dispatch what never reached the broker, re-dispatch what it lost, settle what billing missed. */
export async function reconcile({ db, js, jsm, rpc, log, timing, pipelines, events, nc }: ReconcilerDeps): Promise<void> {
  await endOverdue({ db, js, log, ...(events ? { events } : {}), ...(nc ? { nc } : {}) });
  // Slots an ending left free without handing them on (ADR 031): their jobs are dispatched here.
  await createAdmission({ db, js, log, ...(events ? { events } : {}) }).sweep();

  await db.transaction(async (tx) => {
    for (const row of await lockUndispatchedJobs(tx, timing.dispatchGraceMs)) {
      const dispatch = await dispatchJob(js, tx, row);
      log.warn({ job_id: row.id, dispatch }, "dispatched a job whose first publish never reached the broker");
    }
  });

  await db.transaction(async (tx) => {
    for (const row of await lockOverdueJobs(tx, timing.redispatchAfterMs)) {
      // Each job's own message: another job's message on the same subject says nothing about this one.
      if (await dispatchHeld(jsm, row)) continue;
      const dispatch = await dispatchJob(js, tx, row);
      log.warn({ job_id: row.id, status: row.status, dispatch }, "re-dispatched a job the broker no longer holds");
    }
  });

  await db.transaction(async (tx) => {
    for (const row of await lockUnsettledJobs(tx, timing.dispatchGraceMs)) {
      // One job's billing failure must not hold back the others; the next pass retries it.
      try {
        await settleCredits(tx, rpc, row);
        log.warn({ job_id: row.id, status: row.status }, "settled the credits of a finished job");
      } catch (err) {
        log.warn({ err, job_id: row.id }, "could not settle the credits of a finished job; retrying next pass");
      }
    }
  });

  // After the settles: a pipeline reads its jobs' credit states as it advances.
  await pipelines?.reconcile(timing.dispatchGraceMs);
}

/**
 * How far back past the grace the sweep looks. Job creation reserves and inserts in one transaction
 * (ADR 019), so an orphan can only come from a job-service of before that, mid rolling deploy, or a
 * bare reserve (a manual ledger fix): each is swept within a grace or two, long before a day is up.
 */
export const ORPHAN_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * Gives back credits held for a job that does not exist, reserved within ORPHAN_WINDOW_MS before the
 * grace; the grace spares a bare reserve's insert still on its way. Returns how many it released.
 */
export async function releaseOrphanReservations({ db, log, timing }: Pick<ReconcilerDeps, "db" | "log" | "timing">): Promise<number> {
  let released = 0;
  const window = { olderThanMs: timing.orphanGraceMs, withinMs: timing.orphanGraceMs + ORPHAN_WINDOW_MS, limit: 100 };
  for (const orphan of await orphanReservations(db, window)) {
    try {
      const { refunded } = await db.transaction((tx) => settle(tx, orphan.jobId, "release"));
      // Zero refunded: another replica released it first (unless it held nothing).
      if (refunded === 0 && orphan.amount > 0) continue;
      released++;
      log.warn({ job_id: orphan.jobId, user_id: orphan.userId, credits: orphan.amount, reserved_at: orphan.createdAt }, "released a reservation whose job does not exist");
    } catch (err) {
      log.warn({ err, job_id: orphan.jobId }, "could not release a reservation whose job does not exist; retrying next pass");
    }
  }
  if (released > 0) log.warn({ released }, "released reservations without a job");
  return released;
}
