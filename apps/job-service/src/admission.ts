import type { Db } from "@cutroom/db";
import type { JobEventPublisher, Logger } from "@cutroom/runtime";
import type { JetStreamClient } from "@nats-io/jetstream";
import { dispatchJobs } from "./dispatch.ts";
import { admitWaitingJobsNow, usersWithFreeSlots, waitingJobs, type JobRow } from "./job-store.ts";

/**
 * What follows a change to a user's concurrent-job slots (ADR 031): the jobs that got a slot are told
 * and dispatched, and the jobs still waiting hear their new places. Nothing here is the record: a
 * publish or dispatch that fails is done by the reconciler (undispatched jobs), and GET shows the place.
 */
export function createAdmission(deps: { db: Db; js: JetStreamClient; events?: JobEventPublisher; log: Logger; dispatched?: (rows: readonly JobRow[]) => void }) {
  const inProject = (row: Pick<JobRow, "projectId">) => (row.projectId ? { project_id: row.projectId } : {});

  /**
   * The queued events of the users' first waiting jobs with their new places, above each one's last
   * event. Only the first: every ending moves every waiting job up, and telling a backlog of n each
   * time costs n events per ending (ADR 031's figures); GET shows any job's place.
   */
  const tellPlaces = async (userIds: Iterable<string>) => {
    if (!deps.events) return;
    for (const userId of new Set(userIds)) {
      for (const job of await waitingJobs(deps.db, userId, PLACES_TOLD)) {
        await deps.events
          .publish(job.id, { type: "status", status: "queued", queue_position: job.position, queue_reason: "concurrency_limit", ...inProject(job) }, { unlessEnded: true, floor: job.lastEventSeq })
          .catch((err) => deps.log.warn({ err, job_id: job.id }, "could not publish a job event"));
      }
    }
  };

  /** Jobs just given a slot: a queued event without a place, then their dispatch; then the places of those still waiting. */
  const started = async (rows: readonly JobRow[]) => {
    if (rows.length === 0) return;
    await Promise.all(
      rows.map((row) =>
        deps.events
          ?.publish(row.id, { type: "status", status: "queued", message: "a concurrent-job slot is free", queue_position: null, queue_reason: null, ...inProject(row) }, { unlessEnded: true, floor: row.lastEventSeq })
          .catch((err) => deps.log.warn({ err, job_id: row.id }, "could not publish a job event")),
      ),
    );
    deps.dispatched?.(rows);
    const failed = await dispatchJobs(deps.js, deps.db, rows);
    for (const [i, err] of failed.entries()) if (err) deps.log.warn({ err, job_id: rows[i]!.id }, "could not dispatch the job; the reconciler will");
    await tellPlaces(rows.map((r) => r.userId));
  };

  return {
    started,
    tellPlaces,
    /** After a job of the user ended outside finish (a cancel): its slot, if it held one, goes to the next waiting job. */
    async ended(row: Pick<JobRow, "userId" | "held">): Promise<void> {
      if (row.held) return tellPlaces([row.userId]);
      await started(await admitWaitingJobsNow(deps.db, [row.userId]));
    },
    /** The reconciler's pass: users whose slots a lost admission left free. */
    async sweep(): Promise<number> {
      const users = await usersWithFreeSlots(deps.db);
      if (users.length === 0) return 0;
      const rows = await admitWaitingJobsNow(deps.db, users);
      for (const row of rows) deps.log.warn({ job_id: row.id, user_id: row.userId }, "gave a free concurrent-job slot to a waiting job");
      await started(rows);
      return rows.length;
    },
  };
}

export type Admission = ReturnType<typeof createAdmission>;

/** How many of a user's waiting jobs hear their new place when it changes: the next one to start (ADR 031). */
export const PLACES_TOLD = 1;
