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

/**
 * What a job's events change in its row, applied in seq order as applyEvent would one by one (each
 * sees the row as the ones before left it); null when none of them changes anything.
 */
export function foldEvents(job: Pick<JobRow, "status" | "stages" | "lastEventSeq">, events: readonly JobEvent[]): JobPatch | null {
  let current = job;
  let folded: JobPatch | null = null;
  for (const event of [...events].sort((a, b) => a.seq - b.seq)) {
    const patch = applyEvent(current, event);
    if (!patch) continue;
    folded = { ...(folded ?? {}), ...patch };
    current = { ...current, ...(patch.stages ? { stages: patch.stages } : {}), lastEventSeq: patch.lastEventSeq ?? current.lastEventSeq };
  }
  return folded;
}
