import { terminalStatuses, type JobEvent } from "@cutroom/contracts";
import type { JobRow, NewJob } from "./job-store.ts";

export type JobPatch = Partial<Pick<NewJob, "progress" | "stage" | "stages" | "lastEventSeq">>;

/**
 * What one job event changes in the job's row, or null when it changes nothing: an event already
 * applied (its seq is not past the last one) or one that arrives after the job finished.
 * Status is never taken from an event: claim, finish and cancel write it, so a stray terminal
 * event (an old worker) cannot end a job.
 */
export function applyEvent(job: Pick<JobRow, "status" | "stages" | "lastEventSeq">, event: JobEvent): JobPatch | null {
  if (terminalStatuses.includes(job.status) || event.seq <= job.lastEventSeq) return null;
  const patch: JobPatch = { lastEventSeq: event.seq };
  switch (event.type) {
    case "stage":
      patch.stage = event.stage;
      patch.stages = withStage(job.stages, event.stage, event.status);
      break;
    case "progress":
      patch.progress = event.progress;
      if (event.stage) patch.stage = event.stage;
      break;
  }
  return patch;
}

function withStage(stages: JobRow["stages"], name: string, status: string): JobRow["stages"] {
  if (!stages.some((s) => s.name === name)) return [...stages, { name, status }];
  return stages.map((s) => (s.name === name ? { name, status } : s));
}
