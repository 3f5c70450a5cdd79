import { randomUUID } from "node:crypto";
import {
  AppError,
  describeExceeded,
  describePipelineType,
  evaluateTemplate,
  exceededLimit,
  getJobType,
  isAppError,
  jobLimits,
  pipelineTerminalStatuses,
  toPage,
  TemplateError,
  type Caller,
  type CreatePipelineBody,
  type InputMedia,
  type JobTypeDefinition,
  type ListPipelinesQuery,
  type MediaFacts,
  type Pipeline,
  type PipelineEventInput,
  type PipelineType,
  type TemplateContext,
  zodDetails,
} from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import type { PipelineStageRow } from "@cutroom/db/jobs";
import type { Logger, PipelineEventPublisher, RpcClient, RpcContext } from "@cutroom/runtime";
import { namedFiles } from "./app.ts";
import { pipelineIdFor } from "./job-id.ts";
import { requestHash } from "./request-hash.ts";
import { setApprovals } from "./project-store.ts";
import type { JobRow } from "./job-store.ts";
import { evaluateCount, expandStageJobs, isPlaceholderFileId, placeholderFileId, predictOutputs } from "./pipeline-plan.ts";
import {
  endedPipelines,
  getPipelineRow,
  getUserPipeline,
  insertPipeline,
  listUserPipelines,
  lockPipeline,
  orphanedPipelineJobs,
  pipelineOfJob,
  pipelineJobs,
  pipelineSpend,
  raiseLastEventSeq,
  stageFileIds,
  stageProgress,
  stalePipelineIds,
  toPipeline,
  updatePipeline,
  type PipelineRow,
} from "./pipeline-store.ts";

/** What the engine needs of job-service's own job paths: the very create and cancel POST /jobs and POST /jobs/{id}/cancel use. */
export interface PipelineJobs {
  /** Creates (or, for a key used before, finds) a job of the pipeline; credits reserved as for any job. */
  create: (caller: Caller, body: { type: string; input: Record<string, unknown>; project_id?: string }, idempotencyKey: string, pipeline: { id: string; stage: string; order: number }) => Promise<{ id: string }>;
  cancel: (caller: Caller, jobId: string, ctx: RpcContext) => Promise<{ credits_refunded: number }>;
  /** Checks the job could run here (a provider for its models); throws as create would. */
  requireProvider: (name: string, type: JobTypeDefinition, input: Record<string, unknown>) => void;
  etaSeconds: (type: JobTypeDefinition, input: Record<string, unknown>) => number | null;
}

export interface PipelineDeps {
  db: Db;
  rpc: RpcClient;
  log: Logger;
  types: Map<string, PipelineType>;
  jobs: PipelineJobs;
  /** Whether the caller has a live project with this id (projects' own check). */
  projectExists: (userId: string, projectId: string) => Promise<boolean>;
  /** Publishes the runs' events (ADR 026). */
  events: PipelineEventPublisher;
}

export type PipelineEngine = ReturnType<typeof createPipelineEngine>;

const now = () => new Date().toISOString();
const emptyStage = (name: string): PipelineStageRow => ({ name, status: "pending", progress: 0, started_at: null, completed_at: null, error: null, job_ids: [] });
/** A job-service error that no retry of the advance can mend: the stage fails with it. */
const isPermanent = (err: unknown) => isAppError(err) && err.status >= 400 && err.status < 500;

/**
 * Pipelines (ADR 025): runs of a pipeline type's stages, each an ordinary job (or jobs) created
 * through job-service's own create path, or a gate waiting for the user's approval. A run advances
 * when one of its jobs ends, when the user approves, and from the reconciler; every advance runs
 * under the run's row lock and is idempotent (job ids follow from pipeline, stage and index).
 */
export function createPipelineEngine({ db, rpc, log, types, jobs, projectExists, events }: PipelineDeps) {
  const getType = (name: string): PipelineType => {
    const type = types.get(name);
    if (!type) throw new AppError("INVALID_INPUT", `unknown pipeline type ${name}`, { type: name, known_types: [...types.keys()] });
    return type;
  };
  const ownerOf = (row: PipelineRow): Caller => ({ user_id: row.userId, role: "user", tier: row.tier });

  /** The context the templates of a run read: its input, flavor, what its stages made and what was approved. */
  const contextOf = (row: PipelineRow, stages: PipelineStageRow[], rowJobs: JobRow[]): TemplateContext => {
    const ctx: TemplateContext = { input: row.input, flavor: row.params, stages: {}, gates: {} };
    for (const stage of stages) {
      const stageJobs = rowJobs.filter((j) => j.pipelineStage === stage.name);
      ctx.stages[stage.name] = { file_ids: stageFileIds(stageJobs), results: stageJobs.map((j) => j.result ?? null) };
      if (stage.approved_file_ids) ctx.gates[stage.name] = { file_ids: stage.approved_file_ids };
    }
    return ctx;
  };

  /**
   * The whole run's credits and ETA, before it starts: every stage's jobs priced by their own type
   * with the outputs earlier stages would make (predicted sizes and lengths), each gate passing all
   * of its stage's outputs (at most its max). Also what the first stages cost, which the caller must
   * afford now. A job that could not be created (bad input, over a tier limit) is a 422 here.
   */
  const estimateRun = async (type: PipelineType, input: Record<string, unknown>, params: Record<string, unknown>, caller: Caller, ctx: RpcContext) => {
    const tctx: TemplateContext = { input, flavor: params, stages: {}, gates: {} };
    const facts = new Map<string, Partial<MediaFacts>>();
    const finishAt = new Map<string, number>();
    let credits = 0;
    let firstCredits = 0;
    let anyModel = false;
    for (const def of type.stages) {
      const startAt = Math.max(0, ...def.after.map((d) => finishAt.get(d) ?? 0));
      if (def.gate) {
        const outputs = tctx.stages[def.gate.stage]?.file_ids ?? [];
        const max = evaluateCount(def.gate.max, tctx, def.name, "max");
        tctx.gates[def.name] = { file_ids: max === null ? outputs : outputs.slice(0, max) };
        finishAt.set(def.name, startAt);
        continue;
      }
      const fileIds: string[] = [];
      const results: unknown[] = [];
      let stageEta = 0;
      for (const spec of expandStageJobs(def, tctx)) {
        const where = { stage: def.name, job_type: spec.type };
        const jobType = getJobType(spec.type)!;
        const parsed = jobType.input.safeParse(spec.input);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw new AppError("INVALID_INPUT", `stage ${def.name}: the ${spec.type} job's input is not valid: ${issue?.path.join(".")} ${issue?.message}`, { ...where, ...zodDetails(parsed.error) });
        }
        const jobInput = parsed.data as Record<string, unknown>;
        jobs.requireProvider(spec.type, jobType, jobInput);
        const media = await mediaOf(jobType, jobInput, facts, caller, ctx);
        let work: ReturnType<JobTypeDefinition["work"]>;
        try {
          work = jobType.work(jobInput, media as InputMedia);
        } catch (err) {
          if (isAppError(err)) throw new AppError(err.code, `stage ${def.name}: ${err.message}`, { ...where, ...err.details });
          throw err;
        }
        const over = exceededLimit(work, jobLimits(caller.tier));
        if (over) throw new AppError("INVALID_INPUT", `stage ${def.name}: ${describeExceeded(over)}`, { ...where, reason: "over tier limit", ...over });
        const jobCredits = jobType.cost.estimate(jobInput, work);
        credits += jobCredits;
        if (def.after.length === 0) firstCredits += jobCredits;
        const eta = jobs.etaSeconds(jobType, jobInput);
        if (eta !== null) anyModel = true;
        stageEta = Math.max(stageEta, eta ?? 0);
        const predicted = predictOutputs(spec.type, jobInput, media);
        for (const file of predicted.files) {
          const id = placeholderFileId(facts.size + 1);
          facts.set(id, file);
          fileIds.push(id);
        }
        results.push(predicted.result);
      }
      tctx.stages[def.name] = { file_ids: fileIds, results };
      finishAt.set(def.name, startAt + stageEta);
    }
    return { credits, firstCredits, eta_seconds: anyModel ? Math.max(0, ...finishAt.values()) : null };
  };

  /** Media facts of the files a job would read: predicted for outputs of earlier stages, asked of storage (with the caller's rights) for the user's own. */
  const mediaOf = async (jobType: JobTypeDefinition, input: Record<string, unknown>, facts: Map<string, Partial<MediaFacts>>, caller: Caller, ctx: RpcContext) => {
    const media: Record<string, Partial<MediaFacts> | undefined> = {};
    for (const { field, key, fileId } of namedFiles(jobType.fileFields, input)) {
      if (isPlaceholderFileId(fileId)) {
        media[key] = facts.get(fileId);
        continue;
      }
      const file = await rpc.call("storage", "getFile", { file_id: fileId }, { requestId: ctx.requestId, caller, deadline: ctx.deadline }).catch((err) => {
        if (isAppError(err) && err.code === "NOT_FOUND") throw new AppError("INVALID_INPUT", `${field} names no file of yours`, { field, file_id: fileId, reason: "file not found" });
        throw err;
      });
      if (file.status !== "ready") throw new AppError("INVALID_INPUT", `${field} names a file that is not ready (${file.status})`, { field, file_id: fileId, reason: "file not ready" });
      const accepted = jobType.fileKinds?.[field];
      if (accepted && !accepted.includes(file.kind)) {
        throw new AppError("INVALID_INPUT", `${key} names a file of kind ${file.kind}; it takes ${accepted.join(" or ")}`, { field: key, file_id: fileId, kind: file.kind, accepted, reason: "wrong kind of file" });
      }
      media[key] = file.media;
    }
    return media;
  };

  /**
   * Credits of the jobs an advance from `stages` would make now (every stage whose waits are over,
   * and those after it that need nothing more), priced as POST /jobs prices them. A job that could
   * not be made counts nothing: the advance fails the run with it as before.
   */
  const creditsToStart = async (row: PipelineRow, stages: PipelineStageRow[], rowJobs: JobRow[], ctx: RpcContext) => {
    const type = types.get(row.type);
    if (!type) return 0;
    const owner = ownerOf(row);
    const sim = stages.map((s) => ({ ...s }));
    let credits = 0;
    for (let started = true; started; ) {
      started = false;
      for (const [i, stage] of sim.entries()) {
        const def = type.stages[i]!;
        if (stage.status !== "pending" || !def.after.every((dep) => sim.find((s) => s.name === dep)?.status === "succeeded")) continue;
        started = true;
        if (def.gate) {
          stage.status = "waiting_approval";
          continue;
        }
        const specs = expandStageJobs(def, contextOf(row, sim, rowJobs));
        for (const spec of specs) {
          const jobType = getJobType(spec.type);
          const parsed = jobType?.input.safeParse(spec.input);
          if (!jobType || !parsed?.success) continue;
          const input = parsed.data as Record<string, unknown>;
          try {
            credits += jobType.cost.estimate(input, jobType.work(input, (await mediaOf(jobType, input, new Map(), owner, ctx)) as InputMedia));
          } catch (err) {
            if (!isPermanent(err)) throw err;
          }
        }
        stage.status = specs.length === 0 ? "succeeded" : "running";
      }
    }
    return credits;
  };

  /** Fails the run: its other jobs canceled (credits released), the stages not done marked canceled. */
  const failedStages = (stages: PipelineStageRow[]) =>
    stages.map((s) => (s.status === "pending" || s.status === "running" || s.status === "waiting_approval" ? { ...s, status: "canceled" as const, completed_at: s.started_at ? now() : null } : s));

  const cancelJobs = async (row: PipelineRow, jobIds: string[], ctx: RpcContext) => {
    let refunded = 0;
    for (const jobId of jobIds) {
      try {
        refunded += (await jobs.cancel(ownerOf(row), jobId, ctx)).credits_refunded;
      } catch (err) {
        // Ended meanwhile: nothing left to cancel.
        if (!(isAppError(err) && err.code === "INVALID_STATE")) throw err;
      }
    }
    return refunded;
  };

  /**
   * Publishes a run's events after the change they tell of was committed, in order, each above the
   * row's last_event_seq, and records the last seq on the row. Nothing follows a pipeline_completed.
   * A failed publish costs watchers a live update, not the run: GET /pipelines/{id} shows it.
   */
  const publish = async (row: PipelineRow, list: PipelineEventInput[]) => {
    let seq = row.lastEventSeq;
    try {
      for (const e of list) {
        const published = await events.publish(row.id, { ...e, project_id: row.projectId }, { floor: seq, unlessEnded: true });
        if (published) seq = published.seq;
      }
    } catch (err) {
      log.warn({ err, pipeline_id: row.id }, "could not publish a pipeline event");
    }
    if (seq > row.lastEventSeq) await raiseLastEventSeq(db, row.id, seq).catch((err) => log.warn({ err, pipeline_id: row.id }, "could not record a pipeline's last event seq"));
  };

  /** The events of a change of a run: each stage that started or ended, a gate that opened, the run's ending. */
  const eventsOf = async (before: { status: string; stages: PipelineStageRow[] }, after: PipelineRow): Promise<PipelineEventInput[]> => {
    const list: PipelineEventInput[] = [];
    const type = types.get(after.type);
    for (const stage of after.stages) {
      const was = before.stages.find((s) => s.name === stage.name)?.status ?? "pending";
      if (was === stage.status) continue;
      const started = was === "pending" && stage.status !== "pending" && stage.started_at !== null;
      if (started) list.push({ type: "stage_started", stage: stage.name, job_ids: stage.job_ids });
      if (stage.status === "waiting_approval") {
        const gated = type?.stages.find((d) => d.name === stage.name)?.gate?.stage;
        const fileIds = gated ? stageFileIds((await pipelineJobs(db, [after.id])).filter((j) => j.pipelineStage === gated)) : [];
        list.push({ type: "waiting_approval", stage: stage.name, file_ids: fileIds });
      }
      const ended = stage.status === "succeeded" || stage.status === "failed" || stage.status === "canceled";
      if (ended && (started || was === "running" || was === "waiting_approval")) {
        list.push({ type: "stage_completed", stage: stage.name, status: stage.status as "succeeded" | "failed" | "canceled", ...(stage.error ? { error: stage.error } : {}) });
      }
    }
    if (pipelineTerminalStatuses.includes(after.status) && !pipelineTerminalStatuses.includes(before.status as never)) {
      list.push({ type: "pipeline_completed", status: after.status as "succeeded" | "failed" | "canceled", ...(after.status === "succeeded" ? { progress: 100 } : {}), error: after.error ?? null });
    }
    return list;
  };

  const systemCtx = (id: string): RpcContext => ({ requestId: `pipeline-${id}`, caller: null, log: log.child({ pipeline_id: id }) }) as RpcContext;

  /**
   * One step of a run, under its row lock: running stages take their jobs' outcome (a failed or
   * canceled job fails the run, its other jobs canceled), then every pending stage whose stages
   * before it succeeded starts (jobs created, or the gate opened), until nothing more can start.
   */
  const advanceLocked = async (id: string) => {
    const toCancel: string[] = [];
    let before: { status: string; stages: PipelineStageRow[] } | undefined;
    const row = await db.transaction(async (tx) => {
      const p = await lockPipeline(tx, id);
      if (!p || pipelineTerminalStatuses.includes(p.status)) return null;
      before = { status: p.status, stages: p.stages };
      const type = types.get(p.type);
      let rowJobs = await pipelineJobs(tx, [id]);
      const stages = p.stages.map((s) => ({ ...s }));
      let error: { code: string; message: string } | null = null;
      if (!type) error = { code: "PIPELINE_TYPE_GONE", message: `pipeline type ${p.type} is no longer served here` };

      for (const stage of stages) {
        if (error || stage.status !== "running") continue;
        const stageJobs = stage.job_ids.map((jobId) => rowJobs.find((j) => j.id === jobId));
        const bad = stageJobs.find((j) => j && (j.status === "failed" || j.status === "canceled"));
        if (bad) {
          const why = bad.status === "canceled" ? "was canceled" : `failed: ${bad.error?.message ?? "no reason given"}`;
          stage.status = "failed";
          stage.completed_at = now();
          stage.error = { code: bad.error?.code ?? "JOB_FAILED", message: `job ${bad.id} (${bad.type}) ${why}` };
          error = { code: "STAGE_FAILED", message: `stage ${stage.name}: ${stage.error.message}` };
        } else if (stageJobs.every((j) => j?.status === "succeeded")) {
          stage.status = "succeeded";
          stage.progress = 100;
          stage.completed_at = now();
        }
      }

      for (let started = true; started && !error && type; ) {
        started = false;
        for (const [i, stage] of stages.entries()) {
          const def = type.stages[i]!;
          if (stage.status !== "pending" || !def.after.every((dep) => stages.find((s) => s.name === dep)?.status === "succeeded")) continue;
          started = true;
          stage.started_at = now();
          if (def.gate) {
            stage.status = "waiting_approval";
            continue;
          }
          const owner = ownerOf(p);
          try {
            const specs = expandStageJobs(def, contextOf(p, stages, rowJobs));
            for (const [order, spec] of specs.entries()) {
              // The key follows from the run, stage and place: a retried advance finds the job made before.
              const job = await jobs.create(owner, { ...spec, ...(p.projectId ? { project_id: p.projectId } : {}) }, `pipeline:${p.id}:${stage.name}:${order}`, { id: p.id, stage: stage.name, order });
              if (!stage.job_ids.includes(job.id)) stage.job_ids.push(job.id);
            }
          } catch (err) {
            if (!isPermanent(err)) throw err;
            const e = err as AppError;
            stage.status = "failed";
            stage.completed_at = now();
            stage.error = { code: e.code, message: e.message };
            error = { code: "STAGE_FAILED", message: `stage ${stage.name} could not start its jobs: ${e.message}` };
            break;
          }
          stage.status = stage.job_ids.length === 0 ? "succeeded" : "running";
          if (stage.status === "succeeded") stage.completed_at = now();
        }
      }

      rowJobs = await pipelineJobs(tx, [id]);
      const spend = pipelineSpend(rowJobs);
      if (error) {
        toCancel.push(...rowJobs.filter((j) => j.status === "queued" || j.status === "running").map((j) => j.id));
        return updatePipeline(tx, id, { status: "failed", error, stages: failedStages(stages), completedAt: new Date(), credits: spend.credits, costUsd: spend.costUsd });
      }
      const done = stages.every((s) => s.status === "succeeded");
      const status = done ? "succeeded" : stages.some((s) => s.status === "running") ? "running" : stages.some((s) => s.status === "waiting_approval") ? "waiting_approval" : "running";
      const last = stages.at(-1)!;
      const outputs = done ? stageFileIds(rowJobs.filter((j) => j.pipelineStage === last.name)) : p.outputs;
      return updatePipeline(tx, id, { status, stages, outputs, credits: spend.credits, costUsd: spend.costUsd, ...(done ? { completedAt: new Date() } : {}) });
    });
    if (row && before) await publish(row, await eventsOf(before, row));
    // After the commit: the jobs' own cancel path, each ending no longer able to move the run.
    if (row && toCancel.length > 0) await cancelJobs(row, toCancel, systemCtx(id));
    if (row) log.info({ pipeline_id: id, status: row.status }, "pipeline advanced");
    return row;
  };

  /** One advance at a time per run in this process; across replicas the row lock orders them. */
  const queues = new Map<string, Promise<unknown>>();
  const serial = <T>(id: string, run: () => Promise<T>): Promise<T> => {
    const next = (queues.get(id) ?? Promise.resolve()).catch(() => {}).then(run);
    queues.set(id, next);
    void next.finally(() => queues.get(id) === next && queues.delete(id)).catch(() => {});
    return next;
  };
  const advance = (id: string): Promise<PipelineRow | null> => serial(id, () => advanceLocked(id));

  /** A stage's progress after one of its jobs reported progress: a stage_progress event while the stage runs. */
  const progressed = async (pipelineId: string, stageName: string) => {
    const row = await getPipelineRow(db, pipelineId);
    const stage = row?.stages.find((s) => s.name === stageName);
    if (!row || !stage || stage.status !== "running") return;
    const stageJobs = (await pipelineJobs(db, [pipelineId])).filter((j) => j.pipelineStage === stageName);
    await publish(row, [{ type: "stage_progress", stage: stageName, progress: Math.round(stageProgress(stage, stageJobs) * 10) / 10 }]);
  };

  // Runs ended after this have had their ending checked; 10 minutes back after a start.
  let endingsCursor = new Date(Date.now() - 10 * 60_000);

  const view = async (row: PipelineRow) => toPipeline(row, await pipelineJobs(db, [row.id]), types.get(row.type));

  const userPipeline = async (caller: Caller, id: string) => {
    const row = await getUserPipeline(db, caller.user_id, id);
    if (!row) throw new AppError("NOT_FOUND", "pipeline not found");
    return row;
  };

  return {
    describeTypes: () => [...types.values()].map(describePipelineType),

    /**
     * Starts a run. With an idempotency key the run's id follows from the user and the key
     * (pipelineIdFor): a retry finds the run made before and gets it back (`replayed`) when it asks
     * for the same run (type, flavor, project and input after defaults), 409 IDEMPOTENCY_CONFLICT otherwise.
     */
    create: async (caller: Caller, body: CreatePipelineBody, ctx: RpcContext, idempotencyKey?: string): Promise<Pipeline & { replayed?: boolean }> => {
      const type = getType(body.type);
      const flavorName = body.flavor ?? type.defaultFlavor;
      const flavor = type.flavors[flavorName];
      if (!flavor) throw new AppError("INVALID_INPUT", `pipeline type ${type.name} has no flavor ${flavorName}`, { flavor: flavorName, known_flavors: Object.keys(type.flavors) });
      const parsed = type.input.safeParse(body.input);
      if (!parsed.success) throw new AppError("INVALID_INPUT", `input is not valid for ${type.name}`, zodDetails(parsed.error));
      const input = parsed.data;
      const id = idempotencyKey ? pipelineIdFor(caller.user_id, idempotencyKey) : randomUUID();
      const asked = { type: type.name, flavor: flavorName, project_id: body.project_id ?? null, input };
      const replay = async (earlier: PipelineRow) => {
        if (requestHash({ type: earlier.type, flavor: earlier.flavor, project_id: earlier.projectId, input: earlier.input }) !== requestHash(asked)) {
          throw new AppError("IDEMPOTENCY_CONFLICT", "this idempotency key was already used with a different request");
        }
        return { ...(await view(earlier)), replayed: true };
      };
      // Before anything costs: a replay takes no rate slot and needs no credits.
      const earlier = idempotencyKey ? await getUserPipeline(db, caller.user_id, id) : null;
      if (earlier) return replay(earlier);
      if (body.project_id && !(await projectExists(caller.user_id, body.project_id))) throw new AppError("NOT_FOUND", "project not found", { project_id: body.project_id });
      // Prompt templates of the flavor read the input once, at start.
      let params: Record<string, unknown>;
      try {
        params = evaluateTemplate(flavor.params, { input, flavor: {}, stages: {}, gates: {} }) as Record<string, unknown>;
      } catch (err) {
        if (err instanceof TemplateError) throw new AppError("INVALID_INPUT", `flavor ${flavorName}: ${err.message}`, { flavor: flavorName, reason: "template" });
        throw err;
      }
      const estimate = await estimateRun(type, input, params, caller, ctx);
      const balance = await rpc.call("billing", "balance", { user_id: caller.user_id, tier: caller.tier }, { requestId: ctx.requestId, caller, deadline: ctx.deadline });
      if (balance.credits < estimate.firstCredits) {
        throw new AppError("INSUFFICIENT_CREDITS", `the first stage needs ${estimate.firstCredits} credits; you have ${balance.credits}`, { required: estimate.firstCredits, available: balance.credits, estimate: { credits: estimate.credits, eta_seconds: estimate.eta_seconds } });
      }
      // One slot of the per-minute job window for the run; its stages' jobs take none (they are paced by the run itself).
      const rate = await rpc.call("billing", "rate", { user_id: caller.user_id, tier: caller.tier, bucket: "jobs.create" }, { requestId: ctx.requestId, caller, deadline: ctx.deadline });
      if (!rate.allowed) throw new AppError("RATE_LIMITED", `the ${caller.tier} tier allows ${rate.limit} new jobs per minute`, { limit: rate.limit, remaining: 0, reset: rate.reset });
      const row = await insertPipeline(db, {
        id,
        userId: caller.user_id,
        projectId: body.project_id ?? null,
        type: type.name,
        flavor: flavorName,
        input,
        params,
        tier: caller.tier,
        status: "queued",
        stages: type.stages.map((s) => emptyStage(s.name)),
        estimate: { credits: estimate.credits, eta_seconds: estimate.eta_seconds },
      });
      // Another request with the same key committed first: its run is the answer.
      if (!row) return replay((await getPipelineRow(db, id))!);
      // A failure here leaves a queued run, which the reconciler advances.
      const advanced = await advance(row.id).catch((err) => {
        ctx.log.warn({ err, pipeline_id: row.id }, "could not start the pipeline; the reconciler will");
        return null;
      });
      return view(advanced ?? row);
    },

    get: async (caller: Caller, id: string) => view(await userPipeline(caller, id)),

    list: async (caller: Caller, query: ListPipelinesQuery) => {
      const { rows, total } = await listUserPipelines(db, caller.user_id, query);
      const all = await pipelineJobs(db, rows.map((r) => r.id));
      return toPage(
        rows.map((r) => toPipeline(r, all.filter((j) => j.pipelineId === r.id), types.get(r.type))),
        total,
        query,
      );
    },

    /**
     * Opens a gate with the chosen outputs. When the stages it starts cost more than the owner has,
     * 402 INSUFFICIENT_CREDITS and the gate stays open (nothing reserved): buy credits, approve again.
     */
    approve: async (caller: Caller, id: string, stageName: string, fileIds: string[], rpcCtx: RpcContext) => {
      const { projectId, rejected, before, row } = await db.transaction(async (tx) => {
        const p = await lockPipeline(tx, id, caller.user_id);
        if (!p) throw new AppError("NOT_FOUND", "pipeline not found");
        const def = types.get(p.type)?.stages.find((s) => s.name === stageName);
        const stages = p.stages.map((s) => ({ ...s }));
        const stage = stages.find((s) => s.name === stageName);
        if (!def?.gate || !stage) throw new AppError("INVALID_INPUT", `${stageName} is not a gate of this pipeline`, { stage: stageName, gates: types.get(p.type)?.stages.filter((s) => s.gate).map((s) => s.name) ?? [] });
        if (stage.status !== "waiting_approval") throw new AppError("INVALID_STATE", `the gate ${stageName} is ${stage.status}, not waiting for approval`, { stage: stageName, status: stage.status });
        const rowJobs = await pipelineJobs(tx, [id]);
        const outputs = stageFileIds(rowJobs.filter((j) => j.pipelineStage === def.gate!.stage));
        const stranger = fileIds.find((f) => !outputs.includes(f));
        if (stranger) throw new AppError("INVALID_INPUT", `file ${stranger} is not an output of stage ${def.gate.stage}`, { field: "file_ids", file_id: stranger, outputs });
        if (new Set(fileIds).size !== fileIds.length) throw new AppError("INVALID_INPUT", "file_ids names a file twice", { field: "file_ids" });
        const ctx = contextOf(p, stages, rowJobs);
        const min = evaluateCount(def.gate.min, ctx, def.name, "min") ?? 1;
        const max = evaluateCount(def.gate.max, ctx, def.name, "max");
        if (fileIds.length < min || (max !== null && fileIds.length > max)) {
          const bounds = max === null ? `at least ${min}` : `${min} to ${max}`;
          throw new AppError("INVALID_INPUT", `approve ${bounds} outputs of ${def.gate.stage}; ${fileIds.length} given`, { field: "file_ids", min, max, count: fileIds.length });
        }
        Object.assign(stage, { status: "succeeded", progress: 100, completed_at: now(), approved_file_ids: fileIds });
        // Checked before the verdict commits; a balance that drops between here and the reservations still fails the run.
        const required = await creditsToStart(p, stages, rowJobs, rpcCtx);
        if (required > 0) {
          const owner = ownerOf(p);
          const balance = await rpc.call("billing", "balance", { user_id: owner.user_id, tier: owner.tier }, { requestId: rpcCtx.requestId, caller, deadline: rpcCtx.deadline });
          if (balance.credits < required) {
            throw new AppError("INSUFFICIENT_CREDITS", `the stages after ${stageName} need ${required} credits; you have ${balance.credits}`, { required, available: balance.credits, stage: stageName });
          }
        }
        // Running from here: a crash before the advance leaves a run with nothing to wait for, which the reconciler advances.
        const row = await updatePipeline(tx, id, { status: "running", stages });
        return { projectId: p.projectId, rejected: outputs.filter((f) => !fileIds.includes(f)), before: { status: p.status, stages: p.stages }, row };
      });
      // In the run's queue, so the gate's stage_completed goes out before what the advance starts.
      await serial(id, async () => publish(row, await eventsOf(before, row)));
      // The project's assets show the verdict too (seed 003's save-approved-images): the chosen approved, the rest not.
      if (projectId) {
        await setApprovals(db, projectId, fileIds, true);
        if (rejected.length > 0) await setApprovals(db, projectId, rejected, false);
      }
      return view((await advance(id)) ?? (await userPipeline(caller, id)));
    },

    // In the run's queue from the lock to its jobs' cancels: the reconciler's sweep of ended runs' jobs
    // waits its turn there, so it never cancels (and refunds) a job this cancel is about to.
    cancel: (caller: Caller, id: string, ctx: RpcContext) =>
      serial(id, async () => {
        const { updated: row, before } = await db.transaction(async (tx) => {
          const p = await lockPipeline(tx, id, caller.user_id);
          if (!p) throw new AppError("NOT_FOUND", "pipeline not found");
          if (pipelineTerminalStatuses.includes(p.status)) throw new AppError("INVALID_STATE", `the pipeline is ${p.status} and can no longer be canceled`, { status: p.status });
          const updated = await updatePipeline(tx, id, { status: "canceled", error: { code: "CANCELED", message: "canceled by the user" }, stages: failedStages(p.stages), completedAt: new Date() });
          return { updated, before: { status: p.status, stages: p.stages } };
        });
        await publish(row, await eventsOf(before, row));
        // The run is canceled first, so the jobs' endings find nothing more to start.
        const active = (await pipelineJobs(db, [id])).filter((j) => j.status === "queued" || j.status === "running").map((j) => j.id);
        const refunded = await cancelJobs(row, active, ctx);
        const spend = pipelineSpend(await pipelineJobs(db, [id]));
        const updated = await updatePipeline(db, id, { credits: spend.credits, costUsd: spend.costUsd });
        return { pipeline: await view(updated), credits_refunded: refunded };
      }),

    /**
     * Called when a job ends (finished, failed, canceled): advances its run, if it has one, without
     * holding up the caller. `pipelineId` as the job's row has it; undefined: looked up.
     */
    jobEnded: (jobId: string, pipelineId?: string | null) => {
      if (pipelineId === null) return;
      void (async () => {
        const id = pipelineId ?? (await pipelineOfJob(db, jobId));
        if (id) await advance(id);
      })().catch((err) => log.warn({ err, job_id: jobId }, "could not advance the pipeline of an ended job; the reconciler will"));
    },

    advance,

    /** Called by the events consumer when a job of a run reported progress (its row updated): tells the run's watchers, in the run's order. */
    jobProgressed: (job: Pick<JobRow, "id" | "pipelineId" | "pipelineStage">) => {
      if (!job.pipelineId || !job.pipelineStage) return;
      const { pipelineId, pipelineStage } = job;
      void serial(pipelineId, () => progressed(pipelineId, pipelineStage)).catch((err) => log.warn({ err, job_id: job.id }, "could not publish a pipeline's progress"));
    },

    /**
     * The reconciler's step: advances runs a lost advance left behind, cancels jobs of runs that ended
     * without canceling them, and publishes the pipeline_completed of runs whose own publish failed
     * (watchers wait for it), as job-service does for jobs' endings (endings.ts).
     */
    reconcile: async (graceMs: number) => {
      for (const id of await stalePipelineIds(db, graceMs)) {
        try {
          const row = await advance(id);
          log.warn({ pipeline_id: id, status: row?.status }, "advanced a pipeline whose advance was lost");
        } catch (err) {
          log.warn({ err, pipeline_id: id }, "could not advance a pipeline; retrying next pass");
        }
      }
      for (const { jobId, userId, pipelineId } of await orphanedPipelineJobs(db, graceMs)) {
        try {
          // After whatever the run's queue holds: a cancel of the run still under way there cancels its own jobs.
          await serial(pipelineId, () => jobs.cancel({ user_id: userId, role: "user", tier: "free" }, jobId, systemCtx(jobId)));
          log.warn({ job_id: jobId }, "canceled a job of a pipeline that had ended");
        } catch (err) {
          if (!(isAppError(err) && err.code === "INVALID_STATE")) log.warn({ err, job_id: jobId }, "could not cancel a job of an ended pipeline; retrying next pass");
        }
      }
      try {
        for (const row of await endedPipelines(db, endingsCursor, graceMs)) {
          const ending = { type: "pipeline_completed", status: row.status as "succeeded" | "failed" | "canceled", ...(row.status === "succeeded" ? { progress: 100 } : {}), error: row.error ?? null } as const;
          const published = await events.publish(row.id, { ...ending, project_id: row.projectId }, { unlessEnded: true, floor: row.lastEventSeq });
          if (published) {
            log.warn({ pipeline_id: row.id, seq: published.seq }, "published the ending of a pipeline whose pipeline_completed never reached the stream");
            await raiseLastEventSeq(db, row.id, published.seq);
          }
          // Past a run only once its ending is stored: a failure above leaves the cursor for the next pass.
          endingsCursor = row.completedAt!;
        }
      } catch (err) {
        log.warn({ err }, "could not publish the endings of pipelines; retrying next pass");
      }
    },
  };
}
