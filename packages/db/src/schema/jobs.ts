import { sql } from "drizzle-orm";
import { bigint, boolean, doublePrecision, index, integer, jsonb, pgSchema, primaryKey, real, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

export const jobsSchema = pgSchema("jobs");

export const jobs = jobsSchema.table(
  "jobs",
  {
    id: uuid("id").primaryKey(),
    userId: uuid("user_id").notNull(),
    projectId: uuid("project_id"),
    type: text("type").notNull(),
    queue: text("queue").notNull(),
    status: text("status", { enum: ["queued", "running", "succeeded", "failed", "canceled"] }).notNull(),
    progress: real("progress").notNull().default(0),
    stage: text("stage"),
    stages: jsonb("stages").$type<{ name: string; status: string }[]>().notNull(),
    input: jsonb("input").$type<Record<string, unknown>>().notNull(),
    result: jsonb("result").$type<Record<string, unknown>>(),
    error: jsonb("error").$type<{ code: string; message: string }>(),
    credits: integer("credits").notNull(),
    creditState: text("credit_state", { enum: ["reserved", "captured", "released"] }).notNull().default("reserved"),
    attempts: integer("attempts").notNull().default(0),
    /** How many times Postgres handed the job to the broker; part of the dedup id. */
    dispatchCount: integer("dispatch_count").notNull().default(0),
    dispatchedAt: timestamp("dispatched_at", { withTimezone: true }),
    /** The JOBS stream sequence of the last dispatch's message: the reconciler asks the broker whether it still holds that very message. */
    dispatchSeq: bigint("dispatch_seq", { mode: "number" }),
    /** Until when the worker running the job holds it; its events extend it, and a later claim may take over. */
    leaseUntil: timestamp("lease_until", { withTimezone: true }),
    /** The dispatch the lease holder claimed: JetStream redelivers that message only once its holder let go of it. */
    claimedDispatch: integer("claimed_dispatch"),
    lastEventSeq: integer("last_event_seq").notNull().default(0),
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
    /** The owner's tier at enqueue: the limits the worker holds the job to (null for jobs enqueued before tiers bounded the work). */
    tier: text("tier", { enum: ["free", "pro", "enterprise"] }),
    /** What the model provider charged for the job's runs, in USD, recorded when it ends; null for jobs that ran no model. */
    providerCostUsd: doublePrecision("provider_cost_usd"),
    /** The pipeline run that started the job, its stage and its place in the stage (ADR 025); null for a job asked for directly. */
    pipelineId: uuid("pipeline_id"),
    pipelineStage: text("pipeline_stage"),
    pipelineOrder: integer("pipeline_order"),
    /** Queued but waiting for one of its owner's concurrent-job slots (ADR 031): never dispatched nor claimed while true. */
    held: boolean("held").notNull().default(false),
    /** The order a user's held jobs get their slots in (a sequence: a batch's jobs share created_at). */
    queueOrder: bigint("queue_order", { mode: "number" }).default(sql`nextval('jobs.jobs_queue_order_seq')`),
    /** The owner's name for the job and their free-form tags (issue 15): shown back, filtered on, never read by a worker. */
    displayName: text("display_name"),
    metadata: jsonb("metadata").$type<Record<string, unknown>>(),
    /** low, normal or high (ADR 039). */
    priority: text("priority", { enum: ["low", "normal", "high"] }).notNull().default("normal"),
    /** When the job is served as if it had been created: created_at moved earlier for high, later for low, by the aging interval (ADR 039). */
    runOrder: timestamp("run_order", { withTimezone: true }).defaultNow(),
    /** The attempts it may take (its type's, at creation); null: jobs of before retries were counted here. */
    maxAttempts: integer("max_attempts"),
    /** A retry waiting for its backoff: not dispatched nor claimed before then. */
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }),
    /** A job no worker started by then fails EXPIRED. */
    startBy: timestamp("start_by", { withTimezone: true }),
    /** Seconds one run may take; the run's deadline is set at its claim. */
    timeoutS: integer("timeout_s"),
    runDeadline: timestamp("run_deadline", { withTimezone: true }),
    /** The job whose message the running claim came by, when it is another job's (a claim picks by priority, ADR 039). */
    claimedVia: uuid("claimed_via"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp("started_at", { withTimezone: true }),
    completedAt: timestamp("completed_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("jobs_user_idempotency_uq").on(t.userId, t.idempotencyKey),
    index("jobs_user_created_idx").on(t.userId, t.createdAt),
    index("jobs_status_idx").on(t.status, t.dispatchedAt),
    index("jobs_project_idx").on(t.projectId),
    index("jobs_pipeline_idx").on(t.pipelineId, t.pipelineStage, t.pipelineOrder),
    // A user's slots in use and jobs waiting for one, read under their lock at every creation and ending.
    index("jobs_user_active_idx").on(t.userId, t.held, t.queueOrder).where(sql`status in ('queued', 'running')`),
    // A type's recent run times, for a queued job's eta (ADR 037).
    index("jobs_type_succeeded_idx").on(t.type, t.completedAt).where(sql`status = 'succeeded'`),
    // The claim's pick of the next job of a worker queue, and the reconciler's deadlines and due retries (ADR 039).
    index("jobs_queue_run_order_idx").on(t.queue, t.runOrder).where(sql`status = 'queued' and not held`),
    index("jobs_start_by_idx").on(t.startBy).where(sql`status = 'queued'`),
    index("jobs_run_deadline_idx").on(t.runDeadline).where(sql`status = 'running'`),
    index("jobs_claimed_via_idx").on(t.claimedVia).where(sql`status = 'running' and claimed_via is not null`),
    index("jobs_next_attempt_idx").on(t.nextAttemptAt).where(sql`status = 'queued' and dispatched_at is null`),
    // The reconciler's endings announced since its last pass: new ones only, however many jobs ever ended.
    index("jobs_ended_idx").on(t.completedAt).where(sql`status in ('succeeded', 'failed', 'canceled')`),
    // The reconciler's jobs to dispatch again and credits to settle: the few it may act on, not every job
    // waiting or ended. Empty but for a moment in a healthy stack.
    index("jobs_undispatched_idx").on(t.createdAt).where(sql`status = 'queued' and not held and dispatched_at is null`),
    index("jobs_unsettled_idx").on(t.completedAt).where(sql`status in ('succeeded', 'failed', 'canceled') and credit_state = 'reserved'`),
    // The reconciler's look for a pipeline's jobs left running after their run ended: only pipelines' live jobs.
    index("jobs_pipeline_live_idx").on(t.pipelineId).where(sql`pipeline_id is not null and status in ('queued', 'running')`),
  ],
);

/** One stage of a pipeline run as the engine keeps it (ADR 025). */
export interface PipelineStageRow {
  name: string;
  status: "pending" | "running" | "waiting_approval" | "succeeded" | "failed" | "canceled";
  progress: number;
  started_at: string | null;
  completed_at: string | null;
  error: { code: string; message: string } | null;
  job_ids: string[];
  /** A gate's: the outputs the user chose. */
  approved_file_ids?: string[];
}

/** A run of a pipeline type: stages of ordinary jobs (jobs.pipeline_id) and approval gates, advanced by job-service (ADR 025). */
export const pipelines = jobsSchema.table(
  "pipelines",
  {
    id: uuid("id").primaryKey(),
    userId: uuid("user_id").notNull(),
    projectId: uuid("project_id"),
    type: text("type").notNull(),
    flavor: text("flavor").notNull(),
    input: jsonb("input").$type<Record<string, unknown>>().notNull(),
    /** The flavor's params as they were at start: a flavor file edited later does not change a running pipeline. */
    params: jsonb("params").$type<Record<string, unknown>>().notNull(),
    /** The owner's tier at start: its jobs are created within it. */
    tier: text("tier", { enum: ["free", "pro", "enterprise"] }).notNull(),
    status: text("status", { enum: ["queued", "running", "waiting_approval", "succeeded", "failed", "canceled"] }).notNull(),
    stages: jsonb("stages").$type<PipelineStageRow[]>().notNull(),
    outputs: jsonb("outputs").$type<string[]>().notNull().default([]),
    error: jsonb("error").$type<{ code: string; message: string }>(),
    /** Credits of its jobs, reserved or captured (released ones not counted), as of the last advance. */
    credits: integer("credits").notNull().default(0),
    /** What the model provider charged for its jobs, USD, as of the last advance. */
    costUsd: doublePrecision("cost_usd").notNull().default(0),
    estimate: jsonb("estimate").$type<{ credits: number; eta_seconds: number | null }>().notNull(),
    /** The seq of the pipeline's last event, for live pipeline events. */
    lastEventSeq: integer("last_event_seq").notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp("completed_at", { withTimezone: true }),
  },
  (t) => [
    index("pipelines_user_created_idx").on(t.userId, t.createdAt),
    // The reconciler's look for runs left behind by a crash.
    index("pipelines_active_idx").on(t.updatedAt).where(sql`status in ('queued', 'running')`),
    // The reconciler's runs ended since its last pass, as jobs_ended_idx is for jobs.
    index("pipelines_ended_idx").on(t.completedAt).where(sql`status in ('succeeded', 'failed', 'canceled')`),
  ],
);

/** A user's named group of jobs and files (ADR 024); deleted softly, so its id never names anything again. */
export const projects = jobsSchema.table(
  "projects",
  {
    id: uuid("id").primaryKey(),
    userId: uuid("user_id").notNull(),
    name: text("name").notNull(),
    description: text("description"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    deletedAt: timestamp("deleted_at", { withTimezone: true }),
  },
  (t) => [index("projects_user_created_idx").on(t.userId, t.createdAt).where(sql`deleted_at is null`)],
);

/** The user's verdict on a file of a project; a file without a row is not yet judged. */
export const projectApprovals = jobsSchema.table(
  "project_approvals",
  {
    projectId: uuid("project_id")
      .notNull()
      .references(() => projects.id),
    fileId: uuid("file_id").notNull(),
    approved: boolean("approved").notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.fileId] })],
);
