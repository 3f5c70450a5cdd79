import { randomUUID } from "node:crypto";
import {
  AppError,
  describeExceeded,
  exceededLimit,
  getJobType,
  jobLimits,
  jobTypes,
  subjects,
  toPage,
  zodDetails,
  type Caller,
  type InputMedia,
  type JobTypeDefinition,
  type JobWork,
  loadPipelineTypes,
  type PipelineType,
  rateBuckets,
  tierLimits,
} from "@cutroom/contracts";
import { sqlTag as sql, type Db } from "@cutroom/db";
import { defaultCatalog, resolveModel, unavailableModel, type Catalog, type ModelProviderName } from "@cutroom/models";
import { createPipelineEventPublisher, currentTrace, rpcTimedOut, runChecks, tracing, withTrace, type TraceContext, type JobEventPublisher, type Logger, type NatsConnection, type RpcClient, type RpcContext, type RpcHandlers } from "@cutroom/runtime";
import { jetstream } from "@nats-io/jetstream";
import { createAdmission } from "./admission.ts";
import { createAdminJobHandlers } from "./admin-jobs.ts";
import { settleCredits } from "./credits.ts";
import { coalesce } from "./coalesce.ts";
import { createCreationBatcher } from "./creation-batcher.ts";
import { createQueueLines } from "./queue-lines.ts";
import { dispatchJob, dispatchJobs } from "./dispatch.ts";
import { controlColumns, defaultJobControlSettings, lockDueRetry } from "./job-control.ts";
import { endOverdue } from "./reconciler.ts";
import {
  cancelJob,
  claimJob,
  finishJob,
  getJob,
  getJobByIdempotencyKey,
  getJobsByIdempotencyKeys,
  getUserJob,
  jobStats,
  KeyTaken,
  listJobs,
  toJob,
  type CreateOutcome,
  type JobRow,
  type JobToCreate,
} from "./job-store.ts";
import { createInputFileReader, type InputFileReader } from "./input-files.ts";
import type { Timing } from "./env.ts";
import { jobIdFor } from "./job-id.ts";
import { getLiveProject } from "./project-store.ts";
import { createPipelineEngine, type PipelineEngine } from "./pipelines.ts";
import { createProjectHandlers } from "./projects.ts";
import { requestHash } from "./request-hash.ts";
import { createWorkerLeaseHandlers } from "./worker-leases.ts";

/**
 * A job is not committed later than this before its caller's deadline: room for the commit itself,
 * the answer's way back, and the request's way here (the deadline counts from its arrival).
 */
const COMMIT_MARGIN_MS = 250;

export interface JobDeps {
  db: Db;
  nc: NatsConnection;
  /** Calls billing (settling credits) and storage (a pipeline's files). */
  rpc: RpcClient;
  events: JobEventPublisher;
  log: Logger;
  timing: Timing;
  /** The models catalog and which provider the workers have (MODEL_PROVIDER); absent: the default catalog, no provider. */
  models?: { catalog: Catalog; provider: ModelProviderName };
  /** The pipeline types served (loadPipelineTypes with PIPELINE_FLAVORS_DIR); absent: the built-in ones. */
  pipelineTypes?: Map<string, PipelineType>;
  /** The most jobs one creation transaction commits (JOB_CREATE_BATCH_MAX); absent: 64. */
  createBatchMax?: number;
}

/**
 * job-service: enqueues jobs (credits reserved, input checked), keeps their records, cancels them,
 * and gates every delivery to a worker with a claim. The events consumer and the reconciler
 * (events-consumer.ts, reconciler.ts) keep the records current and the broker honest.
 */
export function createJobService({ db, nc, rpc, events, log, timing, models = { catalog: defaultCatalog(), provider: "none" }, pipelineTypes, createBatchMax = 64 }: JobDeps): {
  handlers: RpcHandlers<"job">;
  pipelines: PipelineEngine;
  admission: ReturnType<typeof createAdmission>;
} {
  const js = jetstream(nc);
  const control = timing.control ?? defaultJobControlSettings;

  /** A retry's dispatch when its backoff is over (the reconciler's pass does it when this process is gone). */
  const dispatchWhenDue = (jobId: string, delayMs: number) =>
    setTimeout(() => {
      void db
        .transaction(async (tx) => {
          const row = await lockDueRetry(tx, jobId);
          if (row) await dispatchJob(js, tx, row);
        })
        .catch((err) => log.warn({ err, job_id: jobId }, "could not dispatch a retry; the reconciler will"));
    }, delayMs + 5).unref();

  /** A claimed run's deadline: checked when it falls due here (the reconciler's pass checks it too). */
  const watchDeadline = (timeoutS: number | null) => {
    if (timeoutS === null) return;
    setTimeout(() => void endOverdue({ db, js, log, events, nc }).catch((err) => log.warn({ err }, "could not end the jobs past their deadlines")), timeoutS * 1000 + 50).unref();
  };


  /** A job whose models nobody can run is refused before anything is reserved (503, seed 000). */
  const requireProvider = (name: string, type: JobTypeDefinition, input: Record<string, unknown>) => {
    const missing = unavailableModel(models.catalog, models.provider, type.models?.(input) ?? []);
    if (!missing) return;
    const { jobType, quality, variant } = missing.use;
    throw new AppError("PROVIDER_UNAVAILABLE", `no model provider serves ${name} here: ${missing.reason}`, {
      type: name,
      model_use: { job_type: jobType, quality, ...(variant ? { variant } : {}) },
      provider: models.provider,
    });
  };

  /** Seconds the models of the input typically take, from the catalog; null for a job that runs none. */
  const etaSeconds = (type: JobTypeDefinition, input: Record<string, unknown>): number | null => {
    const uses = type.models?.(input) ?? [];
    if (uses.length === 0) return null;
    return uses.reduce((sum, u) => sum + (resolveModel(models.catalog, u.jobType, u.quality, u.variant).eta_s ?? 0), 0);
  };

  /** The job's project on the events job-service publishes, so the gateway routes them (and the worker's between) to the project's channel (ADR 026). */
  const inProject = (row: Pick<JobRow, "projectId">) => (row.projectId ? { project_id: row.projectId } : {});

  /**
   * A claimed job's signed storage access (ADR 033): its inputs' URLs and its output URL, so its worker
   * makes no call to storage of its own. Asked beside the claim statement when this process dispatched
   * the job (ADR 057), else once the claim handed it over, while its running event goes out.
   */
  const askStorageAccess = (jobId: string, key: AccessKey, ctx: RpcContext, outside = false) =>
    rpc.call(
      "storage",
      "jobAccess",
      { owner_id: key.userId, job_id: jobId, project_id: key.projectId, file_ids: key.fileIds, ...(outside ? { public: true } : {}) },
      { requestId: ctx.requestId, deadline: Math.min(ctx.deadline ?? Number.POSITIVE_INFINITY, Date.now() + STORAGE_ACCESS_WAIT_MS) },
    );

  /** Best effort: without the access (storage slow or down) the worker asks storage itself, as before, and fails or retries as it did. */
  const storageAccess = async (claimed: JobRow, asked: ReturnType<typeof askStorageAccess>, ctx: RpcContext) => {
    try {
      return await asked;
    } catch (err) {
      ctx.log.warn({ err, job_id: claimed.id }, "storage did not sign the claimed job's access; its worker asks storage itself");
      return undefined;
    }
  };

  /**
   * What a claim does once Postgres handed the job over, a NATS worker's or an HTTP lease's (ADR 040); `outside`: storage URLs for a worker outside.
   * `early`: the access a NATS worker's claim asked beside its statement (ADR 057), for this job's owner, project and files.
   */
  const startClaimed = async (claimed: JobRow, worker: string, ctx: RpcContext, outside = false, early?: ReturnType<typeof askStorageAccess>) => {
    watchDeadline(claimed.timeoutS);
    // The jobs behind it move up: told at the next pass, with every other claim's meanwhile (ADR 037).
    lines.touch(claimed.queue);
    const [running, storage] = await Promise.all([
      publishEvent(claimed.id, { type: "status", status: "running", message: `attempt ${claimed.attempts} on ${worker}`, ...inProject(claimed) }, claimed.lastEventSeq),
      storageAccess(claimed, early ?? askStorageAccess(claimed.id, accessKeyOf(claimed), ctx, outside), ctx),
    ]);
    return { lastEventSeq: Math.max(claimed.lastEventSeq, running?.seq ?? 0), ...(storage ? { storage } : {}) };
  };

  /** `floor`: the row's last_event_seq, so the event goes above what watchers saw even when the broker lost the stored ones. */
  const publishEvent = async (jobId: string, event: Parameters<JobEventPublisher["publish"]>[1], floor = 0) => {
    // Clients lose a live update, not the job: the row is the record and GET shows it.
    return events.publish(jobId, event, { floor }).catch((err) => void log.warn({ err, job_id: jobId }, "could not publish a job event"));
  };

  /**
   * The queued events and the first dispatches of a batch just committed, after the answers: the
   * committed row is the job, and a broker that stalls (a leader election) must not turn it into a
   * 503. Whatever fails here, the reconciler dispatches the job after dispatchGraceMs. The dispatches
   * do not wait for the queued events' acks (ADR 054): the `running` a claim publishes waits behind its
   * job's queued event in this process's publisher, so the queued event is still stored first. A
   * queued event goes only first: one that stalls past that (or a claim answered by another replica)
   * may find `running` stored already, and is then dropped.
   */
  const announce = (created: JobRow[], places: ReadonlyMap<string, number>) => {
    // Taken now, before the creating calls resume and forget them: each job's queued event and dispatch go in its request's trace.
    const traces = tracing.on ? new Map(created.map((r) => [r.id, creationTraces.get(r.id)!] as const).filter(([, t]) => t)) : undefined;
    // A held job waits for a concurrent-job slot (ADR 031): its queued event says where it stands, and it is not dispatched.
    const rows = created.filter((r) => !r.held);
    // After the write of this turn's NATS messages (deferred to an immediate, ADR 034), so the creating
    // calls' answers leave first: a lone request's reply waits neither for its queued event's publish
    // nor behind it. A held job's place is the one its admission counted (ADR 044).
    void new Promise((next) => setImmediate(() => setImmediate(next)))
      .then(() => {
        for (const row of created) {
          const queued = { type: "status", status: "queued", ...(row.held ? { queue_position: places.get(row.id) ?? null, queue_reason: "concurrency_limit" as const } : {}), ...inProject(row) } as const;
          withTrace(traces?.get(row.id), () => events.publish(row.id, queued, { first: true })).catch((err) => log.warn({ err, job_id: row.id }, "could not publish a job event"));
        }
        dispatched.note(rows);
        return rows.length > 0 ? dispatchJobs(js, db, rows, traces) : [];
      })
      .then((failed) => {
        for (const queue of new Set(rows.map((r) => r.queue))) lines.touch(queue);
        for (const [i, err] of failed.entries()) if (err) log.warn({ err, job_id: rows[i]!.id }, "could not dispatch the job; the reconciler will");
      })
      .catch((err) => log.warn({ err, job_ids: rows.map((r) => r.id) }, "could not record the jobs' dispatch; the reconciler will"));
  };

  // The owner, project and files of the jobs this process dispatched lately: their claims ask storage early (ADR 057).
  const dispatched = recentAccessKeys(RECENT_DISPATCHES);
  const admission = createAdmission({ db, js, events, log, dispatched: dispatched.note });
  const lines = createQueueLines({ db, events, log, intervalMs: timing.queuePlacesIntervalMs ?? 0 });
  // Each job being created's request trace, by job id, until its batch commits (tracing on only; ADR 036).
  const creationTraces = new Map<string, TraceContext>();
  const batcher = createCreationBatcher(db, { maxBatch: createBatchMax, created: announce });
  const inputFiles = createInputFileReader(db);
  // A keyed request's earlier job, looked up with the concurrent requests' in one query.
  const keyedJob = coalesce((keys: { userId: string; key: string; id: string }[]) => getJobsByIdempotencyKeys(db, keys));

  /**
   * `pipeline`: the run, stage and place of a job a pipeline starts (ADR 025); such a job takes no rate slot, its run took one.
   * `rateSlot` false: nor does an admin's requeue, which is not the owner asking.
   */
  const createJob = async ({ body, idempotency_key }: Parameters<RpcHandlers<"job">["create"]>[0], ctx: RpcContext, pipeline?: { id: string; stage: string; order: number }, rateSlot = !pipeline) => {
    const caller = requireCaller(ctx);
    const { type, input } = parseInput(body.type, body.input);
    const hash = requestHash(body);
    // A keyed retry's job is found as the batch commits, by the id its key names (ADR 034): no read
    // before. Only when a check refuses it is it looked up here, so that a retry is still answered its
    // job after its file, project or model provider went.
    let work: JobWork;
    try {
      requireProvider(body.type, type, input);
      // Checked again as the job commits (insertReservedJobs); here so that a wrong project costs no rate slot.
      if (body.project_id && !(await getLiveProject(db, caller.user_id, body.project_id))) {
        throw new AppError("NOT_FOUND", "project not found", { project_id: body.project_id });
      }
      work = await sizeWork(inputFiles, type, input, caller);
    } catch (err) {
      const earlier = idempotency_key ? await keyedJob({ userId: caller.user_id, key: idempotency_key, id: jobIdFor(caller.user_id, idempotency_key) }) : null;
      if (earlier) return replay(earlier, hash);
      throw err;
    }

    const commitBy = ctx.deadline === undefined ? undefined : ctx.deadline - COMMIT_MARGIN_MS;
    // A caller that has stopped waiting gets no job: not worth a rate slot either.
    if (commitBy !== undefined && Date.now() >= commitBy) throw rpcTimedOut("job");
    const job: JobToCreate["job"] = {
      ...newJobRow(caller, body, type, input, work, idempotency_key, hash),
      ...controlColumns(body, caller, control),
      // Only when given: a column no job of a batch sets stays out of its insert (insertJobRows).
      ...(body.display_name !== undefined ? { displayName: body.display_name } : {}),
      ...(body.metadata !== undefined ? { metadata: body.metadata } : {}),
      ...(pipeline ? { pipelineId: pipeline.id, pipelineStage: pipeline.stage, pipelineOrder: pipeline.order } : {}),
    };
    // The per-minute slot is taken in the job's transaction, after the checks: a 422 or an idempotent replay costs none.
    const rate = rateSlot ? { bucket: "jobs.create", limit: rateBuckets["jobs.create"](tierLimits[caller.tier]) } : undefined;
    const trace = currentTrace();
    if (trace) creationTraces.set(job.id, trace);
    let outcome: CreateOutcome;
    try {
      outcome = await batcher.create({ job, ...(rate ? { rate } : {}), ...(commitBy !== undefined ? { commitBy } : {}) });
    } catch (err) {
      if (!(err instanceof KeyTaken) || !idempotency_key) throw err;
      // A job of another id (made before ids came from keys) holds the key; this one's reservation rolled back with its insert.
      const winner = await getJobByIdempotencyKey(db, caller.user_id, idempotency_key);
      if (!winner) throw new Error(`job insert conflicted but no job holds key ${idempotency_key}`);
      return replay(winner, hash);
    } finally {
      if (trace) creationTraces.delete(job.id);
    }
    switch (outcome.kind) {
      case "created":
        return { job: toJob(outcome.row, outcome.position), created: true, ...(outcome.rate ? { rate: outcome.rate } : {}) };
      case "exists":
        return replay(outcome.row, hash);
      case "rate-limited": {
        const { limit, reset } = outcome.rate;
        throw new AppError("RATE_LIMITED", `the ${caller.tier} tier allows ${limit} new jobs per minute`, { limit, remaining: 0, reset });
      }
      case "refused":
        throw outcome.error;
      default:
        throw new Error(`job creation answered ${outcome.kind}`);
    }
  };

  /**
   * POST /jobs/batch (issue 15): every job checked first (422 naming `jobs[i]`), then all created in
   * one transaction or none (insertReservedJobs `atomic`): the whole batch's credits (402 with its
   * total), the whole batch in the rate window (429), nothing taken when any is refused. A keyed
   * batch's jobs take ids from the key and their index, so a retry finds them all and replays them.
   */
  const createBatch = async ({ body, idempotency_key }: Parameters<RpcHandlers<"job">["createBatch"]>[0], ctx: RpcContext) => {
    const caller = requireCaller(ctx);
    const hash = requestHash(body);
    const keyOf = (i: number) => (idempotency_key ? `${idempotency_key}${BATCH_KEY_SEPARATOR}${i}` : undefined);
    const replayBatch = (rows: JobRow[]) => {
      if (rows.length !== body.jobs.length || rows.some((r) => r.requestHash !== hash)) {
        throw new AppError("IDEMPOTENCY_CONFLICT", "this idempotency key was already used with a different request");
      }
      return { jobs: rows.map((r) => toJob(r)), created: false };
    };
    const earlier = async () => {
      if (!idempotency_key) return null;
      const rows = await getJobsByIdempotencyKeys(db, body.jobs.map((_, i) => ({ userId: caller.user_id, key: keyOf(i)!, id: jobIdFor(caller.user_id, keyOf(i)!) })));
      return rows.some((r) => r) ? replayBatch(rows.filter((r): r is JobRow => r !== null)) : null;
    };

    // All checked at once; the first refused in order is the one answered.
    // Each a millisecond after the one before: the claim's order (run_order, ADR 039) keeps the batch's.
    const startedAt = Date.now();
    const checked = await Promise.allSettled(
      body.jobs.map(async (item, i) => {
        try {
          const { type, input } = parseInput(item.type, item.input);
          requireProvider(item.type, type, input);
          const columns = controlColumns(item, caller, control, startedAt + i);
          return { type, input, columns, work: await sizeWork(inputFiles, type, input, caller) };
        } catch (err) {
          throw inBatch(err, i, "input");
        }
      }),
    );
    const refused = checked.find((c) => c.status === "rejected");
    if (refused) {
      // A keyed retry is still answered its jobs after one's file, project or provider went.
      const found = await earlier();
      if (found) return found;
      throw refused.reason;
    }
    const projects = [...new Set(body.jobs.flatMap((j) => (j.project_id ? [j.project_id] : [])))];
    for (const projectId of projects) {
      if (!(await getLiveProject(db, caller.user_id, projectId))) {
        const i = body.jobs.findIndex((j) => j.project_id === projectId);
        const found = await earlier();
        if (found) return found;
        throw new AppError("NOT_FOUND", `jobs[${i}]: project not found`, { project_id: projectId, field: `jobs[${i}].project_id`, index: i });
      }
    }

    const commitBy = ctx.deadline === undefined ? undefined : ctx.deadline - COMMIT_MARGIN_MS;
    if (commitBy !== undefined && Date.now() >= commitBy) throw rpcTimedOut("job");
    const rate = { bucket: "jobs.create", limit: rateBuckets["jobs.create"](tierLimits[caller.tier]) };
    const items: JobToCreate[] = body.jobs.map((item, i) => {
      const { type, input, work, columns } = (checked[i] as PromiseFulfilledResult<{ type: JobTypeDefinition; input: Record<string, unknown>; work: JobWork; columns: ReturnType<typeof controlColumns> }>).value;
      const key = keyOf(i);
      return {
        job: {
          ...newJobRow(caller, item, type, input, work, key, hash),
          displayName: item.display_name ?? null,
          metadata: item.metadata ?? null,
          ...columns,
        },
        rate,
        ...(commitBy !== undefined ? { commitBy } : {}),
      };
    });
    const outcomes = await batcher.createAll(items);
    const existing = outcomes.flatMap((o) => (o.kind === "exists" ? [o.row] : []));
    if (existing.length > 0) return replayBatch(existing.length === outcomes.length ? existing : []);
    const first = outcomes[0]!;
    if (first.kind === "rate-limited") {
      const { limit, remaining, reset } = first.rate;
      throw new AppError("RATE_LIMITED", `the ${caller.tier} tier allows ${limit} new jobs per minute; this batch of ${items.length} does not fit the ${remaining} left`, { limit, remaining, reset, requested: items.length });
    }
    const error = outcomes.find((o): o is Extract<CreateOutcome, { kind: "refused" }> => o.kind === "refused");
    if (error) {
      const i = outcomes.indexOf(error);
      throw error.error.code === "INSUFFICIENT_CREDITS" ? error.error : inBatch(error.error, i);
    }
    const created = outcomes.map((o) => (o.kind === "created" ? o : null));
    if (created.some((o) => o === null)) throw new Error("a batch's creation answered neither all created nor a refusal");
    const last = created.at(-1)!;
    return { jobs: created.map((o) => toJob(o!.row, o!.position)), created: true, ...(last.rate ? { rate: last.rate } : {}) };
  };

  /** Cancels a queued or running job of the caller: its worker told, its reservation released, its watchers told. */
  const cancelUserJob = async (caller: Caller, job_id: string, ctx: RpcContext) => {
    const error = { code: "CANCELED", message: "canceled by the user" };
    const canceled = await cancelJob(db, caller.user_id, job_id, error);
    if (!canceled) {
      const row = await getUserJob(db, caller.user_id, job_id);
      if (!row) throw new AppError("NOT_FOUND", "job not found");
      throw new AppError("INVALID_STATE", `the job is ${row.status} and can no longer be canceled`, { status: row.status });
    }
    // Core NATS, not JetStream: only a worker running the job right now needs to hear it.
    nc.publish(subjects.jobCancel(job_id), JSON.stringify({ job_id }));
    // The jobs behind it in its worker queue move up.
    if (canceled.dispatchedAt && !canceled.held) lines.touch(canceled.queue);
    // Its slot (or its place) goes to the owner's next waiting jobs; the reconciler does it when this fails.
    void admission.ended(canceled).catch((err) => ctx.log.warn({ err, job_id }, "could not hand the canceled job's slot on; the reconciler will"));
    let row = canceled;
    try {
      row = await settleCredits(db, rpc, canceled, { requestId: ctx.requestId, caller });
    } catch (err) {
      // The job is canceled either way; the reconciler releases the credits once billing answers.
      ctx.log.warn({ err, job_id }, "could not release the credits of a canceled job");
    }
    await publishEvent(job_id, { type: "error", status: "canceled", error, ...inProject(row) }, row.lastEventSeq);
    // Billing releases a reservation whole and once; when it was down, the reconciler does it later.
    return { job: toJob(row), credits_refunded: row.creditState === "released" ? row.credits : 0 };
  };

  /** Runs `run` once every earlier call with the same key has settled. */
  const pending = new Map<string, Promise<unknown>>();
  const oneAtATime = <T>(key: string, run: () => Promise<T>): Promise<T> => {
    const next = (pending.get(key) ?? Promise.resolve()).catch(() => {}).then(run);
    pending.set(key, next);
    void next.finally(() => pending.get(key) === next && pending.delete(key)).catch(() => {});
    return next;
  };

  const pipelines = createPipelineEngine({
    db,
    rpc,
    log,
    types: pipelineTypes ?? loadPipelineTypes(),
    jobs: {
      create: async (caller, body, idempotency_key, pipeline) => {
        const ctx = { requestId: `pipeline-${pipeline.id}`, caller, log: log.child({ pipeline_id: pipeline.id }) } as RpcContext;
        return (await createJob({ body, idempotency_key }, ctx, pipeline)).job;
      },
      cancel: cancelUserJob,
      requireProvider,
      etaSeconds,
    },
    projectExists: async (userId, projectId) => (await getLiveProject(db, userId, projectId)) !== null,
    events: createPipelineEventPublisher(nc),
  });

  const handlers: RpcHandlers<"job"> = {
    health: async () => runChecks("job", { database: () => db.execute(sql`select 1`), nats: () => nc.rtt() }),

    create: async (request, ctx) => {
      const caller = requireCaller(ctx);
      const { idempotency_key } = request;
      // A retry racing its original waits for it, then replays it: run together, each took a rate slot
      // and reserved credits of its own, and could be refused (402, 429) for them. (Per process; across
      // replicas the job id drawn from the key makes one job with one reservation.)
      return idempotency_key ? oneAtATime(`${caller.user_id}:${idempotency_key}`, () => createJob(request, ctx)) : createJob(request, ctx);
    },

    createBatch: async (request, ctx) => {
      const caller = requireCaller(ctx);
      // As create: a retry racing its original waits for it, then replays it.
      return request.idempotency_key ? oneAtATime(`batch:${caller.user_id}:${request.idempotency_key}`, () => createBatch(request, ctx)) : createBatch(request, ctx);
    },

    get: async ({ job_id }, ctx) => {
      const row = await getUserJob(db, requireCaller(ctx).user_id, job_id);
      if (!row) throw new AppError("NOT_FOUND", "job not found");
      return toJob(row, (await lines.places([row])).get(row.id));
    },

    list: async (query, ctx) => {
      const { rows, total } = await listJobs(db, requireCaller(ctx).user_id, query);
      const places = await lines.places(rows);
      return toPage(
        rows.map((r) => toJob(r, places.get(r.id))),
        total,
        query,
      );
    },

    cancel: async ({ job_id }, ctx) => {
      const reply = await cancelUserJob(requireCaller(ctx), job_id, ctx);
      pipelines.jobEnded(job_id);
      return reply;
    },

    pipelineTypes: async () => ({ data: pipelines.describeTypes() }),
    createPipeline: async ({ idempotency_key, ...body }, ctx) => {
      const caller = requireCaller(ctx);
      // As create: a retry racing its original waits for it, then replays it.
      return idempotency_key ? oneAtATime(`pipeline:${caller.user_id}:${idempotency_key}`, () => pipelines.create(caller, body, ctx, idempotency_key)) : pipelines.create(caller, body, ctx);
    },
    getPipeline: async ({ pipeline_id }, ctx) => pipelines.get(requireCaller(ctx), pipeline_id),
    listPipelines: async (query, ctx) => pipelines.list(requireCaller(ctx), query),
    approvePipeline: async ({ pipeline_id, stage, file_ids }, ctx) => pipelines.approve(requireCaller(ctx), pipeline_id, stage, file_ids, ctx),
    cancelPipeline: async ({ pipeline_id }, ctx) => pipelines.cancel(requireCaller(ctx), pipeline_id, ctx),

    ...createProjectHandlers({ db, rpc }, cancelUserJob, pipelines.cancel),
    ...createAdminJobHandlers({ db, js, create: (caller, body, idempotency_key, ctx) => createJob({ body, idempotency_key }, { ...ctx, caller }, undefined, false) }),
    // Workers over HTTP (ADR 040): a lease is a claim, its ending this service's own finish.
    ...createWorkerLeaseHandlers({
      db,
      rpc,
      events,
      leaseMs: timing.leaseMs,
      started: startClaimed,
      finish: (body, ctx) => handlers.finish(body, ctx),
      inputFiles: (row) => accessKeyOf(row).fileIds,
    }),

    // The same checks and number as create, so what a client is quoted is what it is charged.
    estimate: async ({ type: name, input }, ctx) => {
      const caller = requireCaller(ctx);
      const { type, input: parsed } = parseInput(name, input);
      requireProvider(name, type, parsed);
      const work = await sizeWork(inputFiles, type, parsed, caller);
      return { type: name, credits: type.cost.estimate(parsed, work), description: type.cost.describe, work, eta_seconds: etaSeconds(type, parsed) };
    },

    claim: async ({ job_id, dispatch, worker }, ctx) => {
      // Storage signs the job's access while Postgres hands it over, from what this process dispatched
      // (ADR 057); used only for the job claimed, with the owner, project and files of its row.
      const expected = dispatched.take(job_id);
      const early = expected && askStorageAccess(job_id, expected, ctx);
      // One dropped (the claim handed over another job, or none) fails unheard: storage is asked again, or nothing is claimed.
      early?.catch(() => undefined);
      const claimed = await claimJob(db, job_id, dispatch, timing.leaseMs);
      if (!claimed) {
        const row = await getJob(db, job_id);
        if (!row) return { run: false, reason: "not found" };
        return { run: false, reason: row.status === "running" ? "leased" : row.held && row.status === "queued" ? "held" : row.status };
      }
      ctx.log.info({ job_id: claimed.id, message_job_id: job_id, dispatch, worker, attempt: claimed.attempts }, "job claimed");
      const mine = early && claimed.id === job_id && sameAccess(accessKeyOf(claimed), expected) ? early : undefined;
      const { lastEventSeq: last_event_seq, storage } = await startClaimed(claimed, worker, ctx, false, mine);
      const { id, userId: user_id, type, input, attempts: attempt, projectId: project_id } = claimed;
      // A job enqueued before jobs carried a tier is held to the widest limits, which still bound it.
      return { run: true, job: { id, user_id, type, input, attempt, limits: jobLimits(claimed.tier ?? "enterprise"), project_id, last_event_seq, timeout_s: claimed.timeoutS, ...(storage ? { storage } : {}) } };
    },

    // The row and the credits first, the event last: a client that sees the ending finds it recorded.
    finish: async ({ job_id, dispatch, outcome, provider_cost_usd, last_event_seq = 0 }, ctx) => {
      const { ended: finished, admitted } = await finishJob(db, job_id, dispatch, outcome, provider_cost_usd, control.retry);
      if (finished?.retryInMs !== undefined && outcome.status === "failed") {
        // Back queued until its backoff is over: the owner sees each retry, and its delay, as an event (ADR 039).
        const seconds = Math.round(finished.retryInMs / 100) / 10;
        await publishEvent(
          job_id,
          { type: "status", status: "queued", message: `attempt ${finished.attempts} of ${finished.maxAttempts} failed (${outcome.error.code}: ${outcome.error.message}); retrying in ${seconds} s`, ...inProject(finished) },
          Math.max(finished.lastEventSeq, last_event_seq),
        );
        dispatchWhenDue(job_id, finished.retryInMs);
        ctx.log.info({ job_id, attempt: finished.attempts, retry_in_ms: finished.retryInMs }, "job failed an attempt; retrying");
        return { applied: true, status: "queued" as const };
      }
      // The jobs its slot went to start now (after the commit that gave it to them).
      if (admitted.length > 0) void admission.started(admitted).catch((err) => ctx.log.warn({ err, job_id }, "could not start the jobs waiting for this one's slot; the reconciler will"));
      let row: JobRow | null = finished ?? (await getJob(db, job_id));
      if (!row) throw new AppError("NOT_FOUND", "job not found");
      // Not ours to finish (canceled meanwhile), unless this is a retry of a report already recorded.
      if (!finished && row.status !== outcome.status) return { applied: false, status: row.status };
      if (row.creditState === "reserved") {
        try {
          row = await settleCredits(db, rpc, row, { requestId: ctx.requestId });
        } catch (err) {
          // The ending is recorded either way; the reconciler settles the credits once billing answers.
          ctx.log.warn({ err, job_id }, "could not settle the credits of a finished job");
        }
      }
      const event =
        outcome.status === "succeeded"
          ? ({ type: "result", status: "succeeded", result: outcome.result, ...inProject(row) } as const)
          : ({ type: "error", status: "failed", error: row.error ?? outcome.error, ...inProject(row) } as const);
      // Above the worker's last event too: job-service may not have applied it when the broker lost it.
      await events.publish(job_id, event, { unlessEnded: true, floor: Math.max(row.lastEventSeq, last_event_seq) });
      ctx.log.info({ job_id, status: row.status, credits: row.creditState }, "job finished");
      pipelines.jobEnded(job_id, row.pipelineId);
      return { applied: true, status: row.status };
    },

    stats: async (_body, ctx) => {
      if (ctx.caller?.role !== "admin") throw new AppError("FORBIDDEN", "admins only");
      return jobStats(db);
    },
  };
  return { handlers, pipelines, admission };
}

// A claim waits this long at most for storage's signatures; then its worker asks storage itself (ADR 033).
const STORAGE_ACCESS_WAIT_MS = 1000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The jobs a process remembers having dispatched, for their claims (ADR 057): some minutes of a busy queue. */
const RECENT_DISPATCHES = 10_000;

/** Whom and what storage signs a job's access for (ADR 033): its owner, its project and the files its input names. */
interface AccessKey {
  userId: string;
  projectId: string | null;
  fileIds: string[];
}

function accessKeyOf(row: Pick<JobRow, "userId" | "projectId" | "type" | "input">): AccessKey {
  const fileIds = namedFiles(getJobType(row.type)?.fileFields ?? [], row.input).map((n) => n.fileId);
  return { userId: row.userId, projectId: row.projectId, fileIds: [...new Set(fileIds.filter((id) => UUID.test(id)))] };
}

const sameAccess = (a: AccessKey, b: AccessKey) => a.userId === b.userId && a.projectId === b.projectId && a.fileIds.join() === b.fileIds.join();

/** The access keys of the last `limit` jobs noted, each taken once; the oldest forgotten first. */
function recentAccessKeys(limit: number) {
  const keys = new Map<string, AccessKey>();
  return {
    note(rows: readonly JobRow[]) {
      for (const row of rows) {
        keys.set(row.id, accessKeyOf(row));
        if (keys.size > limit) keys.delete(keys.keys().next().value!);
      }
    },
    take(jobId: string): AccessKey | undefined {
      const key = keys.get(jobId);
      keys.delete(jobId);
      return key;
    },
  };
}

export const createJobHandlers = (deps: JobDeps): RpcHandlers<"job"> => createJobService(deps).handlers;

function requireCaller(ctx: RpcContext): Caller {
  if (!ctx.caller) throw new AppError("UNAUTHORIZED", "sign in to use jobs");
  return ctx.caller;
}

/** Looks the type up in the registry and parses the input with its schema (defaults applied). */
function parseInput(name: string, input: unknown): { type: JobTypeDefinition; input: Record<string, unknown> } {
  const type = getJobType(name);
  if (!type) throw new AppError("INVALID_INPUT", `unknown job type ${name}`, { type: name, known_types: Object.keys(jobTypes) });
  const parsed = type.input.safeParse(input);
  if (!parsed.success) throw new AppError("INVALID_INPUT", `input is not valid for ${name}`, zodDetails(parsed.error));
  return { type, input: parsed.data as Record<string, unknown> };
}

/** Between a batch's key and a job's index in the job's own key: a header value cannot hold it, so no single job's key is ever one of these. */
const BATCH_KEY_SEPARATOR = "\n#";

/** A refusal of one job of a batch, naming it: `jobs[i]` before its message and each field it names (`within`: the part of the job the fields are in). */
function inBatch(err: unknown, i: number, within?: string): unknown {
  if (!(err instanceof AppError)) return err;
  const at = (field: string) => `jobs[${i}].${within ? `${within}.` : ""}${field}`;
  const details = { ...(err.details ?? {}), index: i } as Record<string, unknown>;
  if (typeof details.field === "string") details.field = at(details.field);
  if (Array.isArray(details.fields)) details.fields = (details.fields as { path: string }[]).map((f) => ({ ...f, path: f.path === "(root)" ? `jobs[${i}].${within ?? ""}`.replace(/\.$/, "") : at(f.path) }));
  return new AppError(err.code, `jobs[${i}]: ${err.message}`, details);
}

/** The answer to a repeated idempotency key: the same job for the same request, 409 for another. */
/**
 * A new job's row: queued with its type's stages and the estimated credits reserved. Its id comes from
 * the idempotency key, so every retry of one keyed request addresses the same job and holds one reservation only.
 */
function newJobRow(
  caller: Caller,
  request: { type: string; project_id?: string | undefined },
  type: JobTypeDefinition,
  input: Record<string, unknown>,
  work: JobWork,
  key: string | undefined,
  hash: string,
): JobToCreate["job"] {
  return {
    id: key ? jobIdFor(caller.user_id, key) : randomUUID(),
    userId: caller.user_id,
    projectId: request.project_id ?? null,
    type: request.type,
    queue: type.queue,
    status: "queued",
    stages: type.stages.map((name) => ({ name, status: "pending" })),
    input,
    credits: type.cost.estimate(input, work),
    creditState: "reserved",
    idempotencyKey: key ?? null,
    requestHash: key ? hash : null,
    tier: caller.tier,
  };
}

function replay(row: JobRow, hash: string) {
  if (row.requestHash !== hash) {
    throw new AppError("IDEMPOTENCY_CONFLICT", "this idempotency key was already used with a different request");
  }
  return { job: toJob(row), created: false };
}

/**
 * The work the input asks for, from its files' media facts, within the caller's tier: a job over a
 * limit is refused here (422 naming the limit, the tier and the value), before any credit is reserved.
 */
async function sizeWork(inputFiles: InputFileReader, type: JobTypeDefinition, input: Record<string, unknown>, caller: Caller): Promise<JobWork> {
  const work = type.work(input, await checkInputFiles(inputFiles, type, input, caller));
  const over = exceededLimit(work, jobLimits(caller.tier));
  if (over) {
    throw new AppError("INVALID_INPUT", describeExceeded(over), { reason: "over tier limit", ...over });
  }
  return work;
}

/** The file ids an input names, each with its field (as fileFields writes it) and its key in InputMedia. */
export function namedFiles(fileFields: readonly string[], input: Record<string, unknown>): { field: string; key: string; fileId: string }[] {
  return fileFields.flatMap((field) => {
    // `list[].name`: the `name` of each object of `list` (segments[].audio_file_id), under `list.<index>.name`.
    const nested = /^(\w+)\[\]\.(\w+)$/.exec(field);
    if (nested) {
      const [, list, name] = nested as unknown as [string, string, string];
      const items = input[list];
      if (!Array.isArray(items)) return [];
      return items.flatMap((item, i) => {
        const fileId = (item as Record<string, unknown> | null)?.[name];
        return typeof fileId === "string" ? [{ field, key: `${list}.${i}.${name}`, fileId }] : [];
      });
    }
    const value = input[field];
    // A field holds one file id, or a list of them (reference_file_ids): each list item's facts go under `<field>.<index>`.
    if (typeof value === "string") return [{ field, key: field, fileId: value }];
    if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string").map((fileId, i) => ({ field, key: `${field}.${i}`, fileId }));
    return [];
  });
}

/**
 * Every file the input names must be a ready file of the caller, of a kind its field takes (a colour
 * grade of an audio file is refused here, not failed by the worker); read from storage's rows as
 * storage answers their owner (ADR 027). Returns their media facts by key.
 */
async function checkInputFiles(inputFiles: InputFileReader, type: JobTypeDefinition, input: Record<string, unknown>, caller: Caller): Promise<InputMedia> {
  const media: Record<string, InputMedia[string]> = {};
  const named = namedFiles(type.fileFields, input);
  const found = await inputFiles.get(caller.user_id, named.map((n) => n.fileId));
  // Checked in input order, so the first bad one is the one named.
  for (const { field, key, fileId } of named) {
    const file = found.get(fileId);
    if (!file) throw new AppError("INVALID_INPUT", `${field} names no file of yours`, { field, file_id: fileId, reason: "file not found" });
    if (file.status !== "ready") {
      throw new AppError("INVALID_INPUT", `${field} names a file that is not ready (${file.status})`, { field, file_id: fileId, reason: "file not ready" });
    }
    const accepted = type.fileKinds?.[field];
    if (accepted && !accepted.includes(file.kind)) {
      throw new AppError("INVALID_INPUT", `${key} names a file of kind ${file.kind}; it takes ${accepted.join(" or ")}`, {
        field: key,
        file_id: fileId,
        kind: file.kind,
        accepted,
        reason: "wrong kind of file",
      });
    }
    media[key] = file.media;
  }
  return media;
}
