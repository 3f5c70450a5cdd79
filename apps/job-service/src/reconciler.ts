import type { Db } from "@cutroom/db";
import type { Logger, RpcClient } from "@cutroom/runtime";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { settleCredits } from "./credits.ts";
import { dispatchHeld, dispatchJob } from "./dispatch.ts";
import type { Timing } from "./env.ts";
import { lockOverdueJobs, lockUndispatchedJobs, lockUnsettledJobs } from "./job-store.ts";

export interface ReconcilerDeps {
  db: Db;
  js: JetStreamClient;
  jsm: JetStreamManager;
  rpc: RpcClient;
  log: Logger;
  timing: Timing;
}

/**
 * Postgres is the truth and JetStream may lose messages: every replica runs this loop, and row locks
 * taken with `skip locked` keep two replicas off the same job.
 */
export function startReconciler(deps: ReconcilerDeps): { stop: () => Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> = Promise.resolve();
  const tick = () => {
    current = reconcile(deps)
      .catch((err) => deps.log.error({ err }, "reconcile pass failed"))
      .finally(() => {
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

/** One pass: dispatch what never reached the broker, re-dispatch what it lost, settle what billing missed. */
export async function reconcile({ db, js, jsm, rpc, log, timing }: ReconcilerDeps): Promise<void> {
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
}
