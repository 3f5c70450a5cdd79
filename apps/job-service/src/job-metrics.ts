import { creditsCaptured, creditsReleased, creditsReserved, jobDuration, jobQueueWait, jobsCreated, jobsFinished, jobsStarted, secondsBetween } from "@cutroom/runtime";
import type { CreateOutcome, JobRow } from "./job-store.ts";

// Counted where the rows change, after their commit: each is one transition of one job (docs/METRICS.md).

/** Jobs created and the credits they reserved; the outcomes are handed back. */
export function countCreated(outcomes: CreateOutcome[]): CreateOutcome[] {
  for (const o of outcomes) {
    if (o.kind !== "created") continue;
    jobsCreated.inc({ type: o.row.type });
    creditsReserved.inc({ type: o.row.type }, o.row.credits);
  }
  return outcomes;
}

/** A claimed attempt; the first one's wait since creation. */
export function countStarted(row: JobRow): JobRow {
  jobsStarted.inc({ type: row.type });
  const wait = row.attempts === 1 ? secondsBetween(row.createdAt, row.startedAt) : undefined;
  if (wait !== undefined) jobQueueWait.observe({ type: row.type }, wait);
  return row;
}

/** A job's end (finished by its worker, or canceled), and the credits settled with it. */
export function countEnded<R extends JobRow | null>(row: R): R {
  if (!row) return row;
  jobsFinished.inc({ type: row.type, status: row.status });
  const ran = secondsBetween(row.startedAt, row.completedAt);
  if (ran !== undefined) jobDuration.observe({ type: row.type, status: row.status }, ran);
  countSettled(row);
  return row;
}

/** Credits captured or given back, once a job's reservation is settled. */
export function countSettled(row: Pick<JobRow, "type" | "credits" | "creditState">): void {
  if (row.creditState === "captured") creditsCaptured.inc({ type: row.type }, row.credits);
  else if (row.creditState === "released") creditsReleased.inc({ type: row.type }, row.credits);
}
