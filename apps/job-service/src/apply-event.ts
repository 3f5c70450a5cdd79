import { terminalStatuses, type JobEvent } from "@cutroom/contracts";
import type { JobRow, NewJob } from "./job-store.ts";

export type JobPatch = Partial<Pick<NewJob, "status" | "progress" | "stage" | "stages" | "result" | "error" | "startedAt" | "completedAt" | "lastEventSeq">>;

/**
 * What one job event changes in the job's row, or null when it changes nothing: an event already
 * applied (its seq is not past the last one) or one that arrives after the job finished.
 */
export function applyEvent(job: Pick<JobRow, "status" | "stages" | "startedAt" | "lastEventSeq">, event: JobEvent, now: Date): JobPatch | null {
  if (terminalStatuses.includes(job.status) || event.seq <= job.lastEventSeq) return null;
  const patch: JobPatch = { lastEventSeq: event.seq };
  switch (event.type) {
    case "status":
      // Claims move a job to running and terminal events end it; a status event only confirms, never goes back.
      if (event.status === "running" && job.status === "queued") Object.assign(patch, { status: "running", startedAt: job.startedAt ?? now });
      break;
    case "stage":
      patch.stage = event.stage;
      patch.stages = withStage(job.stages, event.stage, event.status);
      break;
    case "progress":
      patch.progress = event.progress;
      if (event.stage) patch.stage = event.stage;
      break;
    case "log":
      break;
    case "result":
      Object.assign(patch, { status: "succeeded", result: event.result, progress: 100, completedAt: now });
      break;
    case "error":
      Object.assign(patch, { status: event.status, error: event.error, completedAt: now });
      break;
  }
  return patch;
}

function withStage(stages: JobRow["stages"], name: string, status: string): JobRow["stages"] {
  if (!stages.some((s) => s.name === name)) return [...stages, { name, status }];
  return stages.map((s) => (s.name === name ? { name, status } : s));
}
