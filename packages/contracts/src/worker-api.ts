import { z } from "zod";
import { Timestamp, Uuid } from "./common.ts";
import { ContentType, Filename, UploadTicket } from "./files.ts";
import { InputUrl, JobError, JobLimits } from "./jobs.ts";

/**
 * Workers over HTTP (ADR 040): a worker token is a credential of its own, made by an admin and scoped
 * to job types; it leases jobs under /api/v1/worker and is refused everywhere else.
 */
export const WorkerTokenName = z.string().trim().min(1).max(100);
export const CreateWorkerTokenBody = z.object({
  name: WorkerTokenName.describe("who holds it: a machine or a fleet"),
  job_types: z.array(z.string().min(1).max(100)).min(1).max(100).describe("the job types it may lease"),
});
export type CreateWorkerTokenBody = z.infer<typeof CreateWorkerTokenBody>;

export const WorkerToken = z
  .object({
    id: Uuid,
    name: z.string(),
    job_types: z.array(z.string()),
    created_by: Uuid.nullable(),
    created_at: Timestamp,
    last_used_at: Timestamp.nullable().describe("roughly: recorded at most once a minute"),
    revoked_at: Timestamp.nullable(),
  })
  .meta({ id: "WorkerToken" });
export type WorkerToken = z.infer<typeof WorkerToken>;
export const CreatedWorkerToken = WorkerToken.extend({ token: z.string().describe("the secret, shown this once: only its hash is kept") });

/** Who a verified worker token is: the gateway passes it to job-service with each worker call. */
export const WorkerIdentity = z.object({ token_id: Uuid, name: z.string(), job_types: z.array(z.string()) });
export type WorkerIdentity = z.infer<typeof WorkerIdentity>;

export const LeaseBody = z.object({
  job_types: z.array(z.string().min(1).max(100)).min(1).max(100).describe("lease the next job of one of these types; each must be in the token's scope"),
  lease_s: z.number().int().min(1).max(3600).optional().describe("how long the lease lasts without a heartbeat; at most the server's job lease (60 s by default)"),
  wait_s: z.number().int().min(0).max(60).default(0).describe("long poll: wait up to this long for a job; 204 when none came"),
  worker: z.string().trim().min(1).max(100).optional().describe("this instance's name, shown on the job's running event"),
});
export type LeaseBody = z.infer<typeof LeaseBody>;

/** A leased job: what to run, where its inputs are, and where to go next. */
export const WorkerLease = z
  .object({
    lease_id: Uuid,
    expires_at: Timestamp,
    job: z.object({
      id: Uuid,
      type: z.string(),
      input: z.record(z.string(), z.unknown()),
      attempt: z.number().int(),
      stages: z.array(z.string()).describe("the stage names its stage events may use"),
      limits: JobLimits,
      timeout_s: z.number().int().positive().nullable().describe("the run is ended as TIMEOUT past this"),
    }),
    inputs: z.record(z.string(), InputUrl).describe("by file id: a signed download URL of each input file (GET inputs/{file_id} signs a fresh one)"),
    links: z.object({
      heartbeat: z.string(),
      events: z.string(),
      inputs: z.string(),
      outputs: z.string(),
      complete: z.string(),
      fail: z.string(),
    }),
  })
  .meta({ id: "WorkerLease" });
export type WorkerLease = z.infer<typeof WorkerLease>;

export const LeaseState = z.object({ lease_id: Uuid, job_id: Uuid, expires_at: Timestamp });

export const HeartbeatBody = z.object({ lease_s: LeaseBody.shape.lease_s });

/** What a worker reports while it runs: they become the job's events, as a NATS worker's do. */
export const WorkerEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("progress"), progress: z.number().min(0).max(100), stage: z.string().max(100).optional() }),
  z.object({ type: z.literal("stage"), stage: z.string().max(100), status: z.enum(["running", "done", "failed", "skipped"]) }),
  z.object({ type: z.literal("log"), level: z.enum(["info", "warn"]), message: z.string().min(1).max(2000) }),
]);
export type WorkerEvent = z.infer<typeof WorkerEvent>;
export const WorkerEventsBody = z.object({ events: z.array(WorkerEvent).min(1).max(100) });
export const WorkerEventsReply = LeaseState.extend({ published: z.number().int() });

export const CreateOutputBody = z.object({ filename: Filename, content_type: ContentType });
export const OutputTicket = UploadTicket.extend({ confirm_url: z.string().describe("POST here once the bytes are PUT") });

/** A completion's result: its files by id only (outputs this job's lease uploaded and confirmed), any other fields kept as the job's result. */
export const LeaseResult = z.object({ files: z.array(z.object({ file_id: Uuid })).max(1000) }).catchall(z.unknown());
export const CompleteBody = z.object({ result: LeaseResult });
export const FailBody = z.object({
  error: JobError,
  retryable: z.boolean().optional().describe("another attempt may succeed: the job goes back queued while its type has attempts left"),
});
export const FinishedLease = z.object({ job_id: Uuid, status: z.string(), applied: z.literal(true) });

/** The job-service side of each worker call: the gateway adds the verified worker. */
const leased = { lease_id: Uuid, worker: WorkerIdentity };
export const workerRpc = {
  lease: z.object({ job_types: LeaseBody.shape.job_types, lease_s: LeaseBody.shape.lease_s, name: z.string().max(100).optional(), worker: WorkerIdentity }),
  heartbeat: z.object({ ...leased, lease_s: LeaseBody.shape.lease_s }),
  events: z.object({ ...leased, events: WorkerEventsBody.shape.events }),
  input: z.object({ ...leased, file_id: Uuid }),
  output: z.object({ ...leased, filename: Filename, content_type: ContentType }),
  confirmOutput: z.object({ ...leased, file_id: Uuid }),
  finish: z.object({ ...leased, outcome: z.discriminatedUnion("status", [z.object({ status: z.literal("succeeded"), result: LeaseResult }), z.object({ status: z.literal("failed"), error: JobError, retryable: z.boolean().optional() })]) }),
  /** An instance's live leases, for the worker registry: those leased under this name (the token's name when none). */
  inFlight: z.object({ worker: WorkerIdentity, name: z.string().max(100).optional() }),
};
