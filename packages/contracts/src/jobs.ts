import { z } from "zod";
import { Pagination, Tier, Timestamp, Uuid, tierLimits } from "./common.ts";
import { MediaFacts } from "./files.ts";

export const JobStatus = z.enum(["queued", "running", "succeeded", "failed", "canceled"]);
export type JobStatus = z.infer<typeof JobStatus>;
export const terminalStatuses: readonly JobStatus[] = ["succeeded", "failed", "canceled"];

/** The most a job's `metadata` may hold: top-level keys, and bytes of its JSON (issue 15). */
export const jobMetadataLimits = { keys: 50, bytes: 16 * 1024 } as const;

/** The caller's own tags on a job: a small JSON object, stored and shown back as given; never read by a worker. */
export const JobMetadata = z
  .record(z.string().min(1).max(100), z.unknown())
  .superRefine((value, ctx) => {
    const keys = Object.keys(value).length;
    if (keys > jobMetadataLimits.keys) ctx.addIssue({ code: "custom", message: `metadata has ${keys} keys; at most ${jobMetadataLimits.keys}` });
    const bytes = new TextEncoder().encode(JSON.stringify(value)).length;
    if (bytes > jobMetadataLimits.bytes) ctx.addIssue({ code: "custom", message: `metadata is ${bytes} bytes as JSON; at most ${jobMetadataLimits.bytes}` });
  })
  .describe(`a JSON object of your own (at most ${jobMetadataLimits.keys} keys, ${jobMetadataLimits.bytes / 1024} KiB as JSON), shown back on the job; GET /jobs filters on its top-level keys`);
export type JobMetadata = z.infer<typeof JobMetadata>;

export const JobDisplayName = z.string().min(1).max(200).describe("a name of your own for the job, shown back on it; GET /jobs finds it by part of it");

/** Within a worker queue, higher goes first; a waiting job's turn comes closer as it waits (ADR 039). */
export const JobPriority = z.enum(["low", "normal", "high"]);
export type JobPriority = z.infer<typeof JobPriority>;
/** The tiers that may ask for `high` (others: 403 FORBIDDEN, details.reason "priority"). */
export const highPriorityTiers: readonly string[] = ["pro", "enterprise"];

export const CreateJobBody = z.object({
  type: z.string().min(1).max(100),
  input: z.record(z.string(), z.unknown()),
  project_id: Uuid.optional(),
  display_name: JobDisplayName.optional(),
  metadata: JobMetadata.optional(),
  priority: JobPriority.optional().describe("low, normal (the default) or high (pro and enterprise tiers only; 403 otherwise): within a worker queue higher goes first, and a waiting job rises with its wait so low is never starved"),
  start_within_s: z.number().int().min(1).max(30 * 24 * 3600).optional().describe("a job no worker started within this many seconds fails with code EXPIRED and its credits are released; default: its type's"),
  timeout_s: z.number().int().min(1).max(24 * 3600).optional().describe("a run taking longer is canceled (its work killed) and the job fails with code TIMEOUT, credits released; default: its type's"),
});
export type CreateJobBody = z.infer<typeof CreateJobBody>;

export const IdempotencyKey = z.string().min(1).max(200);

/** The most jobs one POST /jobs/batch creates. */
export const maxBatchJobs = 100;
/** POST /jobs/batch: jobs created all together or none (issue 15). */
export const CreateJobsBatchBody = z.object({ jobs: z.array(CreateJobBody).min(1).max(maxBatchJobs) });
export type CreateJobsBatchBody = z.infer<typeof CreateJobsBatchBody>;

export const ResultFile = z.object({ file_id: Uuid, filename: z.string(), content_type: z.string(), size: z.number().int() });
export const JobResult = z.object({ files: z.array(ResultFile) }).catchall(z.unknown());
export type JobResult = z.infer<typeof JobResult>;
export const JobError = z.object({ code: z.string(), message: z.string() });
export type JobError = z.infer<typeof JobError>;

export const CreditState = z.enum(["reserved", "captured", "released"]);
export const StageState = z.object({ name: z.string(), status: z.enum(["pending", "running", "done", "failed", "skipped"]) });

/**
 * Why a queued job waits (ADR 037): `concurrency_limit` while its owner's tier runs as many jobs at once
 * as it may (ADR 031); `waiting_for_worker` once handed to its worker queue, until a worker takes it.
 */
export const QueueReason = z.enum(["concurrency_limit", "waiting_for_worker"]);
export type QueueReason = z.infer<typeof QueueReason>;

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
    max_attempts: z.number().int().nullable().describe("the attempts it may take in all; a retryable failure (a provider's 5xx, a timeout) before the last puts it back queued"),
    next_attempt_at: Timestamp.nullable().describe("while queued after a retryable failure: when its next attempt may start"),
    priority: JobPriority,
    start_by: Timestamp.nullable().describe("a queued job not started by then fails with code EXPIRED"),
    timeout_s: z.number().int().nullable().describe("seconds one run may take before it is canceled with code TIMEOUT"),
    provider_cost_usd: z.number().nullable().describe("what the model provider charged for the job's runs, in USD, once it ended (0 for local engines and the emulator); null without model runs"),
    project_id: Uuid.nullable(),
    queue_position: z
      .number()
      .int()
      .positive()
      .nullable()
      .describe(
        "while the job is queued, its place in the line it waits in (1 is next): with queue_reason concurrency_limit, among its owner's jobs waiting for a concurrent-job slot; with waiting_for_worker, among the jobs handed to its worker queue and not yet taken by a worker. Null once running or ended, and between creation and its hand-over to the queue",
      ),
    queue_reason: QueueReason.nullable().describe("which line a queued job waits in (see queue_position); null when it is in none"),
    eta_seconds: z
      .number()
      .int()
      .nonnegative()
      .nullable()
      .describe("while queued with a queue_position: about how many seconds until it finishes, from the recent run times of its type and the jobs ahead of it; null when running, ended, or nothing is known yet"),
    display_name: z.string().nullable().describe("the name given at creation; null when none"),
    metadata: z.record(z.string(), z.unknown()).describe("the metadata given at creation; {} when none"),
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
  display_name: z.string().min(1).max(200).optional().describe("jobs whose display_name contains this text, in any case"),
  metadata: z
    .record(z.string().min(1).max(100), z.string().max(1000))
    .optional()
    .describe("`metadata[key]=value`, repeatable: jobs whose metadata has each top-level key with exactly that value (a string, or a number or boolean written as text)"),
});
export type ListJobsQuery = z.infer<typeof ListJobsQuery>;

export const CancelReply = z.object({ job: Job, credits_refunded: z.number().int() });
export const JobsBatchReply = z.object({ jobs: z.array(Job).describe("the jobs created, in the order asked") });

/** The work a job asks for, sized before it runs from its input and its input files' media facts. */
export const JobWork = z.object({
  input_pixels: z.number().int().nonnegative().describe("pixels of the picture it decodes (an image, or one video frame); 0 for none"),
  output_pixels: z.number().int().nonnegative().describe("pixels of the picture it writes (an image, or one video frame); 0 for none"),
  media_seconds: z.number().nonnegative().describe("seconds of video or audio it reads (the whole input file)"),
  output_seconds: z.number().nonnegative().describe("seconds of video or audio it writes (a frame range picks part of the input)"),
  segments: z.number().int().nonnegative().optional().describe("segments it edits one by one (video.lipsync); absent for types without"),
});
export type JobWork = z.infer<typeof JobWork>;

export const Estimate = z.object({
  type: z.string(),
  credits: z.number().int(),
  description: z.string(),
  work: JobWork,
  eta_seconds: z.number().nullable().describe("how long its models typically take, from the models catalog; null for a job that runs none"),
});

/** The bounds a worker holds a job to, whatever was checked at enqueue: its owner's tier's, as it was then. */
export const JobLimits = z.object({
  tier: Tier,
  max_input_pixels: z.number().int().positive(),
  max_output_pixels: z.number().int().positive(),
  max_media_seconds: z.number().positive(),
  // Optional: limits issued before segments were bounded (a claim of an older job) have none.
  max_segments: z.number().int().positive().optional(),
});
export type JobLimits = z.infer<typeof JobLimits>;

export function jobLimits(tier: Tier): JobLimits {
  const l = tierLimits[tier];
  return { tier, max_input_pixels: l.maxInputPixels, max_output_pixels: l.maxOutputPixels, max_media_seconds: l.maxMediaSeconds, max_segments: l.maxSegments };
}

export interface ExceededLimit {
  limit: "max_input_pixels" | "max_output_pixels" | "max_media_seconds" | "max_segments";
  value: number;
  max: number;
  tier: Tier;
}

/** Which of `work`'s measures (those known) is past `limits`, first found; undefined when none is. */
export function exceededLimit(work: Partial<JobWork>, limits: JobLimits): ExceededLimit | undefined {
  const checks = [
    ["max_input_pixels", work.input_pixels],
    ["max_output_pixels", work.output_pixels],
    ["max_media_seconds", work.media_seconds],
    ["max_segments", work.segments],
  ] as const;
  for (const [limit, value] of checks) {
    const max = limits[limit];
    if (value !== undefined && max !== undefined && value > max) return { limit, value, max, tier: limits.tier };
  }
  return undefined;
}

const megapixels = (pixels: number) => `${Math.round(pixels / 1e5) / 10} megapixels`;

/** The owner's words for a limit a job is past, the same at enqueue (422) and in a worker (LIMIT_EXCEEDED). */
export function describeExceeded({ limit, value, max, tier }: ExceededLimit): string {
  const what =
    limit === "max_input_pixels"
      ? `the input picture has ${megapixels(value)}; at most ${megapixels(max)} may be read`
      : limit === "max_output_pixels"
        ? `the output picture would have ${megapixels(value)}; at most ${megapixels(max)} may be written`
        : limit === "max_segments"
          ? `the job has ${value} segments; at most ${max} may be edited in one job`
          : `the input lasts ${Math.round(value)} s; at most ${max} s may be processed`;
  return `${what} on the ${tier} tier`;
}

/** What job-service publishes on `jobs.run.<queue>.<type>`. */
export const JobDispatch = z.object({
  job_id: Uuid,
  user_id: Uuid,
  type: z.string(),
  input: z.record(z.string(), z.unknown()),
  dispatch: z.number().int().describe("how many times Postgres has handed this job to the broker"),
});
export type JobDispatch = z.infer<typeof JobDispatch>;

/** A signed download URL of one input file, with what the worker checks the download against. */
export const InputUrl = z.object({
  url: z.string(),
  expires_at: z.string(),
  filename: z.string(),
  content_type: z.string(),
  size: z.number().int(),
  media: MediaFacts.optional().describe("what storage measured when it stored the file (ADR 058); absent where it measured nothing"),
});
export type InputUrl = z.infer<typeof InputUrl>;

/**
 * What storage-service signs for one claimed job (ADR 033): a download URL for each input file that is
 * a ready file of the owner, and, where its data plane receives worker uploads itself (fs driver), one
 * URL the job's outputs are PUT to, `?filename=<name>`, which records each as a ready output on receipt.
 */
export const JobStorageAccess = z.object({
  inputs: z.record(z.string(), InputUrl),
  output_url: z.string().optional(),
  expires_at: z.string(),
});
export type JobStorageAccess = z.infer<typeof JobStorageAccess>;

/**
 * job-service's answer to a worker that received a dispatch. `run: false` means ack and
 * drop the message (the job is finished, canceled, or another worker holds a live lease).
 */
export const ClaimReply = z.object({
  run: z.boolean(),
  reason: z.string().optional(),
  job: z
    .object({
      id: Uuid,
      user_id: Uuid,
      type: z.string(),
      input: z.record(z.string(), z.unknown()),
      attempt: z.number().int(),
      limits: JobLimits,
      // Optional: a job-service of before outputs inherited it answers without.
      project_id: Uuid.nullable().optional().describe("the job's project: its outputs belong to it too"),
      // Optional: a job-service of before answers without (the worker then knows only the stored events).
      last_event_seq: z
        .number()
        .int()
        .nonnegative()
        .optional()
        .describe("the job's last event seq job-service knows, the claim's own running event included: the worker's events go above it"),
      // Optional: absent when storage did not answer in time, or from a job-service of before (the worker then asks storage itself).
      storage: JobStorageAccess.optional().describe("signed access to the job's files, asked of storage-service by the claim (ADR 033)"),
      timeout_s: z.number().int().positive().nullable().optional().describe("seconds this run may take; job-service cancels it past that (ADR 039)"),
    })
    .optional(),
});
export type ClaimReply = z.infer<typeof ClaimReply>;

/** A worker's final word on a job it claimed: job-service records it, settles credits, then tells the owner. */
export const FinishBody = z.object({
  job_id: Uuid,
  dispatch: z.number().int(),
  provider_cost_usd: z.number().nonnegative().optional().describe("the USD the job's model runs cost, failed ones included"),
  last_event_seq: z
    .number()
    .int()
    .nonnegative()
    .optional()
    .describe("the seq of the worker's last event of the job: the terminal event goes above it, stored or not"),
  outcome: z.discriminatedUnion("status", [
    z.object({ status: z.literal("succeeded"), result: JobResult }),
    z.object({
      status: z.literal("failed"),
      error: JobError,
      // Optional: a worker of before retried by itself and reports only its last failure.
      retryable: z.boolean().optional().describe("another attempt may succeed (a provider's 5xx, a network timeout): job-service puts the job back queued while it has attempts left"),
    }),
  ]),
});
export const FinishReply = z.object({ applied: z.boolean(), status: JobStatus });
export type FinishBody = z.infer<typeof FinishBody>;
