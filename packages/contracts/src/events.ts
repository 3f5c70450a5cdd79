import { z } from "zod";
import { JobError, JobResult, JobStatus, QueueReason } from "./jobs.ts";
import { Uuid } from "./common.ts";

// project_id: on the events job-service publishes for a job of a project, so the gateway can route the job's events to the project's channel (ADR 026).
const base = { job_id: Uuid, seq: z.number().int().positive(), timestamp: z.string(), project_id: Uuid.optional() };

/** What travels on `jobs.events.<jobId>`: a per-job `seq` that only grows lets clients resume. */
export const JobEvent = z.discriminatedUnion("type", [
  z.object({
    ...base,
    type: z.literal("status"),
    status: JobStatus,
    message: z.string().optional(),
    // A queued job's place in the line it waits in, on its queued events as it changes (ADR 031, ADR 037); null once in none.
    queue_position: z.number().int().positive().nullable().optional(),
    queue_reason: QueueReason.nullable().optional(),
    // With a place: about how many seconds until it finishes (ADR 037).
    eta_seconds: z.number().int().nonnegative().nullable().optional(),
  }),
  z.object({ ...base, type: z.literal("stage"), stage: z.string(), status: z.enum(["running", "done", "failed", "skipped"]) }),
  z.object({ ...base, type: z.literal("progress"), progress: z.number().min(0).max(100), stage: z.string().optional() }),
  z.object({ ...base, type: z.literal("log"), level: z.enum(["info", "warn", "error"]), message: z.string() }),
  z.object({ ...base, type: z.literal("result"), status: z.literal("succeeded"), result: JobResult }),
  z.object({ ...base, type: z.literal("error"), status: z.enum(["failed", "canceled"]), error: JobError }),
]);
export type JobEvent = z.infer<typeof JobEvent>;
export type JobEventInput = JobEvent extends infer E ? (E extends unknown ? Omit<E, "job_id" | "seq" | "timestamp"> : never) : never;

export const isTerminalEvent = (e: JobEvent) => e.type === "result" || e.type === "error";

/**
 * What travels on `pipelines.events.<pipelineId>` (ADR 026): a run's transitions with a per-run
 * `seq`, published by job-service's pipeline engine with the same publisher as job events.
 */
export const PipelineEvent = z.object({
  type: z.enum(["stage_started", "stage_progress", "waiting_approval", "stage_completed", "pipeline_completed"]),
  pipeline_id: Uuid,
  seq: z.number().int().positive(),
  timestamp: z.string(),
  project_id: Uuid.nullable().optional(),
  stage: z.string().optional(),
  progress: z.number().min(0).max(100).optional(),
  /** stage_completed: the stage's ending (succeeded, failed, canceled); pipeline_completed: the run's (succeeded, failed, canceled). */
  status: z.enum(["succeeded", "failed", "canceled"]).optional(),
  error: JobError.nullable().optional(),
  /** stage_started: the jobs it created; waiting_approval: the outputs to choose from. */
  job_ids: z.array(Uuid).optional(),
  file_ids: z.array(Uuid).optional(),
});
export type PipelineEvent = z.infer<typeof PipelineEvent>;
export type PipelineEventInput = Omit<PipelineEvent, "pipeline_id" | "seq" | "timestamp">;

export const isTerminalPipelineEvent = (e: PipelineEvent) => e.type === "pipeline_completed";
