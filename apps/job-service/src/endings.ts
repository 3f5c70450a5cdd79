import { isTerminalEvent, JobEvent, streams, subjects, type JobEventInput } from "@cutroom/contracts";
import { and, asc, gt, lt, sqlTag as sql, type Db } from "@cutroom/db";
import { jobs } from "@cutroom/db/jobs";
import type { JobEventPublisher, Logger } from "@cutroom/runtime";
import type { JetStreamManager } from "@nats-io/jetstream";

type EndedJob = Pick<typeof jobs.$inferSelect, "id" | "status" | "result" | "error" | "lastEventSeq" | "completedAt">;

/** The terminal event that tells a job's watchers how it ended, from its row (the record). */
export function terminalEventOf(row: Pick<EndedJob, "status" | "result" | "error">): JobEventInput {
  if (row.status === "succeeded") return { type: "result", status: "succeeded", result: (row.result ?? {}) as Extract<JobEventInput, { type: "result" }>["result"] };
  const error = row.error ?? { code: "INTERNAL", message: "the job ended without an error recorded" };
  return { type: "error", status: row.status === "canceled" ? "canceled" : "failed", error };
}

/** The jobs that ended after `cursor` and over `graceMs` ago, oldest first, up to 500: from jobs_ended_idx, however many jobs ever ended. */
export function endedSince(db: Db, cursor: Date, graceMs: number) {
  return (
    db
      .select({ id: jobs.id, status: jobs.status, result: jobs.result, error: jobs.error, lastEventSeq: jobs.lastEventSeq, completedAt: jobs.completedAt })
      .from(jobs)
      // The states written out, not as parameters: a generic plan then still sees the index's condition.
      .where(and(sql`${jobs.status} in ('succeeded', 'failed', 'canceled')`, gt(jobs.completedAt, cursor), lt(jobs.completedAt, sql`now() - make_interval(secs => ${graceMs / 1000})`)))
      .orderBy(asc(jobs.completedAt))
      .limit(500)
  );
}

/**
 * Every ended job's terminal event reaches the stream, even when its publish at finish or cancel
 * failed (a NATS leader election, job-service killed between the commit and the publish): watchers
 * wait for that event. Each pass looks at the jobs that ended since the last one (a cursor kept in
 * memory, 10 minutes back after a start) and publishes the ending of those whose last stored event
 * is not terminal. Publishing with `unlessEnded` keeps it idempotent across replicas.
 */
export function createEndingsAnnouncer(deps: { db: Db; jsm: JetStreamManager; events: JobEventPublisher; log: Logger; graceMs: number; lookBackMs?: number }) {
  let cursor = new Date(Date.now() - (deps.lookBackMs ?? 10 * 60_000));
  const lastStoredIsTerminal = async (jobId: string) => {
    const stored = await deps.jsm.streams.getMessage(streams.jobEvents.name, { last_by_subj: subjects.jobEvents(jobId) }).catch((err: Error) => {
      if (/no message found|not found/i.test(err.message)) return null;
      throw err;
    });
    const parsed = stored ? JobEvent.safeParse(stored.json()) : undefined;
    return parsed?.success === true && isTerminalEvent(parsed.data);
  };

  return async function announceEndings(): Promise<number> {
    // Jobs younger than the grace may still have their own publish in flight.
    const rows: EndedJob[] = await endedSince(deps.db, cursor, deps.graceMs);
    let announced = 0;
    for (const row of rows) {
      if (!(await lastStoredIsTerminal(row.id))) {
        const event = await deps.events.publish(row.id, terminalEventOf(row), { unlessEnded: true, floor: row.lastEventSeq });
        if (event) {
          announced++;
          deps.log.warn({ job_id: row.id, status: row.status, seq: event.seq }, "published the ending of a job whose terminal event never reached the stream");
        }
      }
      // Only past a job once its ending is stored: a failure above leaves the cursor for the next pass.
      cursor = row.completedAt!;
    }
    return announced;
  };
}
