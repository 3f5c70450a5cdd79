import { z } from "zod";
import { AdminUserPatch, Jwks, LoginBody, RefreshBody, RegisterBody, RegisterReply, TokenPair, User } from "./auth.ts";
import { AdminGrantBody, CreditPackage, Credits, LedgerEntry, RateDecision, PurchaseReply, StorageUsage } from "./billing.ts";
import { Caller, Pagination, Tier, Uuid, page } from "./common.ts";
import {
  ChunkedUploadTicket,
  ContentType,
  CreateUploadBody,
  DownloadUrl,
  FileKind,
  FileObject,
  Filename,
  InitChunkedUploadBody,
  ListFilesQuery,
  ResumableUpload,
  UploadTicket,
} from "./files.ts";
import { ServiceHealth } from "./health.ts";
import { QueuesReply, RequeueReply } from "./admin.ts";
import { FileImport, ImportFileBody } from "./files.ts";
import { CancelReply, ClaimReply, CreateJobBody, CreateJobsBatchBody, FinishBody, FinishReply, Estimate, IdempotencyKey, InputUrl, Job, JobsBatchReply, JobStorageAccess, ListJobsQuery } from "./jobs.ts";
import { EnhancedPrompt, EnhancePromptRequest } from "./prompts.ts";
import { CreatedWorkerToken, CreateWorkerTokenBody, FinishedLease, LeaseState, WorkerEventsReply, WorkerIdentity, WorkerLease, WorkerToken, workerRpc } from "./worker-api.ts";
import { ApprovePipelineBody, CancelPipelineReply, CreatePipelineBody, ListPipelinesQuery, Pipeline, PipelineTypeDescription } from "./pipelines.ts";
import {
  ApprovalsBody,
  ApprovalsReply,
  CreateProjectBody,
  DeleteProjectReply,
  ListProjectsQuery,
  Project,
  ProjectAsset,
  ProjectAssetsFilter,
  ProjectCosts,
  UpdateProjectBody,
} from "./projects.ts";

const method = <Req extends z.ZodType, Res extends z.ZodType>(req: Req, res: Res) => ({ req, res });
const Empty = z.object({});
const health = method(Empty, ServiceHealth);

/**
 * Every internal request/reply method, by service. Subject: `svc.<service>.<method>`.
 * Both sides parse with these schemas: the caller its reply, the service its request.
 */
export const rpc = {
  auth: {
    health,
    register: method(RegisterBody, RegisterReply),
    login: method(LoginBody, TokenPair),
    refresh: method(RefreshBody, TokenPair),
    logout: method(z.object({ refresh_token: z.string().optional() }), z.object({ revoked: z.number().int() })),
    me: method(Empty, User),
    jwks: method(Empty, Jwks),
    listUsers: method(Pagination, page(User)),
    updateUser: method(AdminUserPatch.extend({ user_id: Uuid }), User),
    // Admins' credit grants pass here, where the caller's role is read from the database, on their way to billing.grant.
    grantCredits: method(AdminGrantBody.extend({ user_id: Uuid }), z.object({ credits: z.number().int() })),
    stats: method(Empty, z.object({ total_users: z.number().int(), users_today: z.number().int() })),
    // Worker tokens (ADR 040): admins make, list and revoke them; the gateway verifies one on each worker request.
    createWorkerToken: method(CreateWorkerTokenBody, CreatedWorkerToken),
    listWorkerTokens: method(Empty, z.object({ data: z.array(WorkerToken) })),
    revokeWorkerToken: method(z.object({ token_id: Uuid }), WorkerToken),
    verifyWorkerToken: method(z.object({ token: z.string().max(200) }), WorkerIdentity),
  },
  billing: {
    health,
    openAccount: method(z.object({ user_id: Uuid, credits: z.number().int().nonnegative() }), z.object({ credits: z.number().int() })),
    // The gateway adds storage-service's usage (GET /billing/credits).
    balance: method(z.object({ user_id: Uuid, tier: Tier }), Credits.omit({ storage: true })),
    ledger: method(Pagination.extend({ user_id: Uuid }), page(LedgerEntry)),
    reserve: method(z.object({ user_id: Uuid, job_id: Uuid, amount: z.number().int().nonnegative() }), z.object({ balance: z.number().int() })),
    capture: method(z.object({ job_id: Uuid }), z.object({ state: z.enum(["captured", "released", "none"]) })),
    release: method(z.object({ job_id: Uuid }), z.object({ state: z.enum(["captured", "released", "none"]), refunded: z.number().int() })),
    rate: method(z.object({ user_id: Uuid, tier: Tier, bucket: z.string() }), RateDecision),
    // A fixed window with the caller's own limit, keyed by any string (an email, an address): auth's sign-in throttle.
    // A cost of -1 gives back one unit taken earlier in the same window (a sign-in that turned out right).
    throttle: method(
      z.object({
        bucket: z.string().min(1).max(64),
        key: z.string().min(1).max(320),
        limit: z.number().int().positive(),
        window_seconds: z.number().int().positive().max(86_400),
        cost: z.union([z.literal(1), z.literal(-1)]).default(1),
      }),
      RateDecision,
    ),
    purchase: method(z.object({ user_id: Uuid, package: CreditPackage, payment_method: z.string() }), PurchaseReply),
    // Reached only through auth.grantCredits (NATS permissions: auth-service alone may call it).
    grant: method(AdminGrantBody.extend({ user_id: Uuid }), z.object({ credits: z.number().int() })),
  },
  storage: {
    health,
    createUpload: method(CreateUploadBody.extend({ max_bytes: z.number().int() }), UploadTicket),
    confirmUpload: method(z.object({ file_id: Uuid }), FileObject),
    createIngest: method(
      z.object({ filename: Filename, content_type: ContentType, project_id: Uuid.optional(), max_bytes: z.number().int() }),
      z.object({ file_id: Uuid, ingest_url: z.string() }),
    ),
    getFile: method(z.object({ file_id: Uuid }), FileObject),
    listFiles: method(ListFilesQuery, page(FileObject)),
    downloadUrl: method(z.object({ file_id: Uuid, expires_in: z.number().int().positive().optional() }), DownloadUrl),
    // POST /files/import: the fetch runs on in storage-service after the answer; getImport follows it.
    startImport: method(ImportFileBody.extend({ max_bytes: z.number().int() }), FileImport),
    getImport: method(z.object({ import_id: Uuid }), FileImport),
    deleteFile: method(z.object({ file_id: Uuid }), z.object({ deleted: z.literal(true) })),
    // The caller's bytes against their tier's quota (GET /billing/credits shows it).
    usage: method(z.object({}), StorageUsage),
    // job-service's, for projects (caller: the owner): a project's ready files, oldest first, narrowed to the ids and jobs given.
    projectFiles: method(
      Pagination.extend({
        project_id: Uuid,
        kind: FileKind.optional(),
        file_ids: z.array(Uuid).optional().describe("only these files"),
        job_ids: z.array(Uuid).optional().describe("only outputs of these jobs"),
      }),
      page(FileObject),
    ),
    // A deleted project's files, every state, bytes and records.
    deleteProjectFiles: method(z.object({ project_id: Uuid }), z.object({ deleted: z.number().int() })),
    stats: method(Empty, z.object({ total_files: z.number().int(), total_bytes: z.number().int() })),
    // Resumable uploads (chunked and tus, ADR 030): records here, bytes over the data plane at `url` (signed, per upload).
    createResumableUpload: method(
      InitChunkedUploadBody.extend({ protocol: z.enum(["chunked", "tus"]), chunk_size: z.number().int().positive().optional(), max_bytes: z.number().int() }),
      ChunkedUploadTicket,
    ),
    getResumableUpload: method(z.object({ upload_id: Uuid }), ResumableUpload),
    resumableUploadUrl: method(z.object({ upload_id: Uuid }), z.object({ url: z.string(), upload: ResumableUpload })),
    deleteResumableUpload: method(z.object({ upload_id: Uuid }), z.object({ deleted: z.literal(true) })),
    // Worker-facing (system calls, caller null): bytes move only through short-lived signed URLs.
    inputUrl: method(z.object({ owner_id: Uuid, file_id: Uuid, public: z.boolean().optional() }), InputUrl),
    // job-service's claim asks it for the claimed job (ADR 033): its inputs' URLs and where its outputs go, in one call.
    // `public`: URLs for a worker outside (over HTTP, ADR 040), through the public address rather than storage's own.
    jobAccess: method(z.object({ owner_id: Uuid, job_id: Uuid, project_id: Uuid.nullable().optional(), file_ids: z.array(Uuid).max(100), public: z.boolean().optional() }), JobStorageAccess),
    // `project_id`: the job's, which its outputs inherit.
    createOutput: method(z.object({ owner_id: Uuid, job_id: Uuid, filename: z.string(), content_type: z.string(), project_id: Uuid.optional(), public: z.boolean().optional() }), UploadTicket),
    // `check`: bytes the worker did not make (a model provider's): checked as an upload is, refused when they are not what they claim.
    confirmOutput: method(z.object({ owner_id: Uuid, file_id: Uuid, check: z.boolean().optional() }), FileObject),
  },
  job: {
    health,
    // `rate` is the per-minute window after this request; absent on an idempotent replay, which takes no slot.
    create: method(z.object({ body: CreateJobBody, idempotency_key: IdempotencyKey.optional() }), z.object({ job: Job, created: z.boolean(), rate: RateDecision.optional() })),
    // All the jobs or none (issue 15); `rate` as on create, absent on a replay.
    createBatch: method(z.object({ body: CreateJobsBatchBody, idempotency_key: IdempotencyKey.optional() }), JobsBatchReply.extend({ created: z.boolean(), rate: RateDecision.optional() })),
    get: method(z.object({ job_id: Uuid }), Job),
    list: method(ListJobsQuery, page(Job)),
    cancel: method(z.object({ job_id: Uuid }), CancelReply),
    estimate: method(CreateJobBody.pick({ type: true, input: true }), Estimate),
    // Worker-facing: the gate every delivery passes before work starts (see ClaimReply).
    claim: method(z.object({ job_id: Uuid, dispatch: z.number().int(), worker: z.string() }), ClaimReply),
    finish: method(FinishBody, FinishReply),
    // Workers over HTTP (ADR 040), through the gateway: a lease is a claim in Postgres, its events and ending go the claim's ways.
    workerLease: method(workerRpc.lease, z.object({ lease: WorkerLease.omit({ links: true }).nullable() })),
    workerHeartbeat: method(workerRpc.heartbeat, LeaseState),
    workerEvents: method(workerRpc.events, WorkerEventsReply),
    workerInput: method(workerRpc.input, InputUrl),
    workerOutput: method(workerRpc.output, UploadTicket),
    workerConfirmOutput: method(workerRpc.confirmOutput, FileObject),
    workerFinish: method(workerRpc.finish, FinishedLease),
    // The registry's in_flight and last hour of a worker over HTTP, counted in Postgres so that every gateway puts the same figures.
    workerInFlight: method(
      workerRpc.inFlight,
      z.object({ in_flight: z.number().int(), done_last_hour: z.number().int(), failed_last_hour: z.number().int(), recent_durations_ms: z.array(z.number().int()) }),
    ),
    // Pipelines (ADR 025): runs of stages of ordinary jobs, advanced by job-service.
    pipelineTypes: method(Empty, z.object({ data: z.array(PipelineTypeDescription) })),
    // `idempotency_key` as on create: the same key and request give the same run, `replayed` (a run made before).
    createPipeline: method(CreatePipelineBody.extend({ idempotency_key: IdempotencyKey.optional() }), Pipeline.extend({ replayed: z.boolean().optional() })),
    getPipeline: method(z.object({ pipeline_id: Uuid }), Pipeline),
    listPipelines: method(ListPipelinesQuery, page(Pipeline)),
    approvePipeline: method(ApprovePipelineBody.extend({ pipeline_id: Uuid }), Pipeline),
    cancelPipeline: method(z.object({ pipeline_id: Uuid }), CancelPipelineReply),
    createProject: method(CreateProjectBody, Project),
    listProjects: method(ListProjectsQuery, page(Project)),
    getProject: method(z.object({ project_id: Uuid }), Project),
    updateProject: method(z.object({ project_id: Uuid, patch: UpdateProjectBody }), Project),
    deleteProject: method(z.object({ project_id: Uuid }), DeleteProjectReply),
    projectAssets: method(ProjectAssetsFilter.extend({ project_id: Uuid }), page(ProjectAsset)),
    approveFiles: method(ApprovalsBody.extend({ project_id: Uuid }), ApprovalsReply),
    projectCosts: method(z.object({ project_id: Uuid }), ProjectCosts),
    stats: method(
      Empty,
      z.object({ active_jobs: z.number().int(), completed_jobs_today: z.number().int(), average_processing_time_minutes: z.number().nullable() }),
    ),
    // Admins' (GET /admin/queues, POST /admin/jobs/{id}/requeue): every worker queue's depth; a failed job run again.
    queues: method(Empty, QueuesReply),
    requeue: method(z.object({ job_id: Uuid }), RequeueReply),
  },
  // Synchronous model calls, answered by the worker that holds the provider token (worker-image), not by a service of its own.
  models: {
    enhancePrompt: method(EnhancePromptRequest, EnhancedPrompt),
  },
} as const;

export type Rpc = typeof rpc;
export type RpcService = keyof Rpc;
export type RpcMethod<S extends RpcService> = keyof Rpc[S] & string;
export type RpcReq<S extends RpcService, M extends RpcMethod<S>> = Rpc[S][M] extends { req: infer R extends z.ZodType } ? z.input<R> : never;
export type RpcReqParsed<S extends RpcService, M extends RpcMethod<S>> = Rpc[S][M] extends { req: infer R extends z.ZodType } ? z.output<R> : never;
export type RpcRes<S extends RpcService, M extends RpcMethod<S>> = Rpc[S][M] extends { res: infer R extends z.ZodType } ? z.output<R> : never;

/** The envelope every internal request travels in. */
export const RpcRequest = z.object({
  request_id: z.string(),
  caller: Caller.nullable(),
  /** The end user's network address as the gateway saw it (throttles sign-in per address); absent for system calls. */
  client_ip: z.string().max(64).nullable().optional(),
  /**
   * How long the caller still waits for the answer, in ms, as it sends: the callee's deadline is its
   * arrival plus this. A duration, not a time of day, so the hosts' clocks need not agree. Absent from older callers.
   */
  timeout_ms: z.number().int().positive().optional(),
  body: z.unknown(),
});
export type RpcRequest = z.infer<typeof RpcRequest>;
export const RpcReply = z.union([
  z.object({ ok: z.literal(true), data: z.unknown() }),
  z.object({ ok: z.literal(false), error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }) }),
]);
export type RpcReply = z.infer<typeof RpcReply>;
