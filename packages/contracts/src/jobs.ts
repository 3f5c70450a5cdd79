import { z } from "zod";
import { Pagination, Timestamp, Uuid } from "./common.ts";

export const JobStatus = z.enum(["queued", "running", "succeeded", "failed", "canceled"]);
export type JobStatus = z.infer<typeof JobStatus>;
export const terminalStatuses: readonly JobStatus[] = ["succeeded", "failed", "canceled"];

export const CreateJobBody = z.object({
  type: z.string().min(1).max(100),
  input: z.record(z.string(), z.unknown()),
  project_id: Uuid.optional(),
});
export type CreateJobBody = z.infer<typeof CreateJobBody>;

export const IdempotencyKey = z.string().min(1).max(200);

export const ResultFile = z.object({ file_id: Uuid, filename: z.string(), content_type: z.string(), size: z.number().int() });
export const JobResult = z.object({ files: z.array(ResultFile) }).catchall(z.unknown());
export type JobResult = z.infer<typeof JobResult>;
export const JobError = z.object({ code: z.string(), message: z.string() });
export type JobError = z.infer<typeof JobError>;

export const CreditState = z.enum(["reserved", "captured", "released"]);
export const StageState = z.object({ name: z.string(), status: z.enum(["pending", "running", "done", "failed", "skipped"]) });

export const Job = z
  .object({
    id: Uuid,
    type: z.string(),
    status: JobStatus,
    progress: z.number().min(0).max(100),
    stage: z.string().nullable(),
    stages: z.array(StageState),
    input: z.record(z.string(), z.unknown()),
    result: JobResult.nullable(),
    error: JobError.nullable(),
    credits: z.object({ amount: z.number().int(), state: CreditState }),
    attempts: z.number().int(),
    project_id: Uuid.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
    started_at: Timestamp.nullable(),
    completed_at: Timestamp.nullable(),
  })
  .meta({ id: "Job" });
export type Job = z.infer<typeof Job>;

export const ListJobsQuery = Pagination.extend({
  status: JobStatus.optional(),
  type: z.string().max(100).optional(),
  project_id: Uuid.optional(),
});
export type ListJobsQuery = z.infer<typeof ListJobsQuery>;

export const CancelReply = z.object({ job: Job, credits_refunded: z.number().int() });
export const Estimate = z.object({ type: z.string(), credits: z.number().int(), description: z.string() });

/** What job-service publishes on `jobs.run.<queue>.<type>`. */
export const JobDispatch = z.object({
  job_id: Uuid,
  user_id: Uuid,
  type: z.string(),
  input: z.record(z.string(), z.unknown()),
  dispatch: z.number().int().describe("how many times Postgres has handed this job to the broker"),
});
export type JobDispatch = z.infer<typeof JobDispatch>;

/**
 * job-service's answer to a worker that received a dispatch. `run: false` means ack and
 * drop the message (the job is finished, canceled, or another worker holds a live lease).
 */
export const ClaimReply = z.object({
  run: z.boolean(),
  reason: z.string().optional(),
  job: z
    .object({ id: Uuid, user_id: Uuid, type: z.string(), input: z.record(z.string(), z.unknown()), attempt: z.number().int() })
    .optional(),
});
export type ClaimReply = z.infer<typeof ClaimReply>;

/** A worker's final word on a job it claimed: job-service records it, settles credits, then tells the owner. */
export const FinishBody = z.object({
  job_id: Uuid,
  dispatch: z.number().int(),
  outcome: z.discriminatedUnion("status", [
    z.object({ status: z.literal("succeeded"), result: JobResult }),
    z.object({ status: z.literal("failed"), error: JobError }),
  ]),
});
export const FinishReply = z.object({ applied: z.boolean(), status: JobStatus });
export type FinishBody = z.infer<typeof FinishBody>;
