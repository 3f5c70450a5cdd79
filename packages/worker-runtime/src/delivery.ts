import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { readdir, rm, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { JobDispatch, JobResult, getJobType, isAppError, subjects, type ClaimReply, type FinishBody, type JobError, type JobLimits, type JobStorageAccess } from "@cutroom/contracts";
import { activeSpan, extractTrace, inSpan, SpanKind, tracing, type JobEventPublisher, type Logger, type NatsConnection, type RpcClient, type StorageReplicas } from "@cutroom/runtime";
import type { JsMsg } from "@nats-io/jetstream";
import { createJobContext } from "./job-context.ts";
import { TransferError } from "./transfer.ts";
import { isJobFailure, JobFailure, RetryableFailure } from "./job-failure.ts";
import { totalCostUsd, type ModelService, type ProviderRecord } from "./models.ts";
import type { AnyJobHandler, JobContext, JobOutput } from "./types.ts";

export interface DeliveryDeps {
  nc: NatsConnection;
  rpc: RpcClient;
  events: JobEventPublisher;
  log: Logger;
  /** Who claims the job: `<name>-<pid>`. */
  workerId: string;
  handlers: Readonly<Record<string, AnyJobHandler>>;
  ackWaitMs: number;
  maxAttempts: number;
  retryBaseMs: number;
  /** How long stage and progress events wait before they are published (see createJobContext). */
  eventDelayMs: number;
  tmpRoot: string;
  /** The models catalog and provider every job's `ctx.models` uses. */
  models: ModelService;
  /** storage-service's replicas, which transfers fail over between; absent: each URL as it is. */
  storage?: StorageReplicas;
  /** Abort controllers of the jobs running now, so a stopping worker can give them back. */
  running: Set<AbortController>;
  /** Where a delivery registers for its job's cancel (watchCancels). */
  cancels: CancelWatch;
}

/** How one delivery ends; `settle` turns each into exactly one ack, nak or term. */
export type Outcome =
  | { kind: "dropped"; reason: string }
  | { kind: "succeeded"; result: JobResult; providerCostUsd: number | null }
  | { kind: "failed"; error: JobError; cause?: unknown; providerCostUsd?: number | null; retryable?: boolean }
  | { kind: "retry"; delayMs: number; cause: unknown; notice?: string }
  | { kind: "canceled" }
  | { kind: "released" }
  | { kind: "lost"; error: JobError };

class JobCanceled extends Error {}

export interface CancelWatch {
  /** Aborts `controller` when the job is canceled, until the returned function is called. */
  watch: (jobId: string, controller: AbortController) => () => void;
  close: () => void;
}

/**
 * One subscription to every job's cancel for the whole worker, rather than a subscribe and an
 * unsubscribe per delivery (ADR 028). Only a job running here right now has anything to abort.
 */
export function watchCancels(nc: NatsConnection): CancelWatch {
  const watched = new Map<string, Set<AbortController>>();
  const prefix = subjects.jobCancel("");
  const sub = nc.subscribe(subjects.jobCancel("*"), {
    callback: (_err, msg) => {
      for (const controller of watched.get(msg.subject.slice(prefix.length)) ?? []) controller.abort(new JobCanceled("the job was canceled"));
    },
  });
  return {
    watch(jobId, controller) {
      const set = watched.get(jobId) ?? watched.set(jobId, new Set()).get(jobId)!;
      set.add(controller);
      return () => {
        set.delete(controller);
        if (set.size === 0 && watched.get(jobId) === set) watched.delete(jobId);
      };
    },
    close: () => sub.unsubscribe(),
  };
}
class WorkerStopping extends Error {}
export const stoppingReason = () => new WorkerStopping("the worker is shutting down");

/** Delay before the next attempt after a transient failure: with a 1 s base 1 s, 4 s, 16 s, at most 30 s. */
export const retryDelayMs = (attempt: number, baseMs: number) => Math.min(30_000, baseMs * 4 ** (attempt - 1));

/**
 * Handles one JetStream message from start to its single ack, nak or term. Never throws. `release`
 * gives back the delivery's working slot (see startWorker): called once its job only moves results
 * (its first upload starts) or has ended, before the finish is reported; calling it again does nothing.
 * `reporting` is called once the attempt has ended and only its report and settle remain (ADR 045).
 */
export function handleDelivery(msg: JsMsg, deps: DeliveryDeps, release: () => void = () => {}, reporting: () => void = () => {}): Promise<void> {
  if (!tracing.on) return deliver(msg, deps, release, reporting);
  // The delivery's span, child of its dispatch's publish span: the job's trace goes on here (ADR 036).
  const type = msg.subject.split(".").slice(3).join(".");
  return inSpan(`process ${type}`, { kind: SpanKind.CONSUMER, parent: extractTrace(msg.headers), attributes: { "messaging.system": "nats", "messaging.destination.name": msg.subject, "cutroom.delivery": msg.info.deliveryCount } }, () => deliver(msg, deps, release, reporting));
}

async function deliver(msg: JsMsg, deps: DeliveryDeps, release: () => void, reporting: () => void): Promise<void> {
  let dispatch: JobDispatch;
  try {
    dispatch = JobDispatch.parse(msg.json());
  } catch (err) {
    deps.log.error({ err, subject: msg.subject, seq: msg.seq }, "dropping an unparsable dispatch");
    msg.term();
    return;
  }
  const log = deps.log.child({ job_id: dispatch.job_id, dispatch: dispatch.dispatch, delivery: msg.info.deliveryCount });
  if (tracing.on) activeSpan()?.setAttributes({ "cutroom.job_id": dispatch.job_id, "cutroom.dispatch": dispatch.dispatch });
  const heartbeat = setInterval(() => msg.working(), Math.max(250, Math.floor(deps.ackWaitMs / 3)));
  const controller = new AbortController();
  // Watched before the claim: a cancel landing between claim and handler start still aborts.
  const unwatch = deps.cancels.watch(dispatch.job_id, controller);
  deps.running.add(controller);
  // The job's events and its ending go above every seq this delivery knows of (ADR 020).
  const seq = { last: 0 };
  // The job the claim handed over: the message's, or the one its queue serves first (ADR 039).
  const claimed = { jobId: dispatch.job_id, unwatch: () => {} };
  try {
    const outcome = await runDelivery(msg, dispatch, controller, deps, log, seq, release, claimed);
    release();
    reporting();
    await settle(msg, claimed.jobId, dispatch.dispatch, outcome, deps, log, seq);
  } catch (err) {
    log.error({ err }, "could not settle the delivery; giving it back");
    handBack(msg, deps.maxAttempts, log, retryDelayMs(msg.info.deliveryCount, deps.retryBaseMs));
  } finally {
    clearInterval(heartbeat);
    unwatch();
    claimed.unwatch();
    deps.running.delete(controller);
  }
}

async function runDelivery(
  msg: JsMsg,
  dispatch: JobDispatch,
  controller: AbortController,
  deps: DeliveryDeps,
  log: Logger,
  seq: { last: number },
  release: () => void,
  claimed: { jobId: string; unwatch: () => void },
): Promise<Outcome> {
  const signal = controller.signal;
  // The consumer redelivers without limit (see ensureWorkerConsumer), and a nak or term settles every
  // attempt up to the limit: a delivery past it means the earlier ones died unsettled (a killed worker,
  // a job that crashes its worker every time). Running it again could crash yet another worker.
  if (msg.info.deliveryCount > deps.maxAttempts) {
    return { kind: "lost", error: { code: "WORKER_LOST", message: `no worker finished this job in ${deps.maxAttempts} attempts` } };
  }
  let claim: ClaimReply;
  try {
    claim = await deps.rpc.call("job", "claim", { job_id: dispatch.job_id, dispatch: dispatch.dispatch, worker: deps.workerId });
  } catch (err) {
    // job-service is down or slow: wait a whole ack period rather than burn attempts in seconds.
    return { kind: "retry", delayMs: deps.ackWaitMs, cause: err };
  }
  if (!claim.run || !claim.job) return { kind: "dropped", reason: claim.reason ?? "the claim was refused" };

  const job = claim.job;
  if (job.id !== dispatch.job_id) {
    // Another job than the message's: its cancel (or timeout) must reach this run too.
    claimed.jobId = job.id;
    claimed.unwatch = deps.cancels.watch(job.id, controller);
  }
  seq.last = job.last_event_seq ?? 0;
  const tmpDir = jobDir(deps.tmpRoot, job.id);
  // The model runs of this attempt, whatever its ending: a failed prediction is billed too.
  const usage: { runs: readonly ProviderRecord[] } = { runs: [] };
  try {
    const result = await runHandler(
      { id: job.id, userId: job.user_id, type: job.type, attempt: job.attempt, dispatch: dispatch.dispatch, projectId: job.project_id ?? null },
      job.input,
      job.limits,
      tmpDir.get,
      signal,
      deps,
      log,
      usage,
      seq,
      release,
      job.storage,
    );
    // A cancel that arrives as the handler finishes still wins: job-service has already told the owner.
    if (signal.reason instanceof JobCanceled) return { kind: "canceled" };
    return { kind: "succeeded", result, providerCostUsd: totalCostUsd(usage.runs) };
  } catch (err) {
    if (signal.aborted) return signal.reason instanceof JobCanceled ? { kind: "canceled" } : { kind: "released" };
    const providerCostUsd = totalCostUsd(usage.runs);
    if (isJobFailure(err)) return { kind: "failed", error: { code: err.code, message: err.message }, cause: err, providerCostUsd };
    // Another attempt may cure it (a provider's 5xx or timeout, a network error): job-service puts the
    // job back queued while its type has attempts left, after a backoff (ADR 039). No worker waits.
    const code = err instanceof RetryableFailure ? err.code : "WORKER_ERROR";
    // The cause, when it is one we can name to the owner (storage unreachable, say); never an internal detail.
    const message = err instanceof RetryableFailure ? err.message : err instanceof TransferError ? `processing failed: ${err.message}` : "processing failed";
    return { kind: "failed", error: { code, message }, cause: err, providerCostUsd, retryable: true };
  } finally {
    if (tmpDir.made) await removeJobDir(tmpDir.path).catch((err) => log.warn({ err, tmpDir: tmpDir.path }, "could not remove the job's temp dir"));
  }
}

/**
 * A job's temp dir, made the first time `get` is called: a tiny job that works in memory (readInput,
 * an upload of bytes) never creates, fills and removes a folder, which on ext4 cost more CPU than its
 * resize (ADR 047). Unique by its random part; made with one synchronous mkdir.
 */
function jobDir(root: string, jobId: string): { path: string; made: boolean; get: () => string } {
  const dir = {
    path: "",
    made: false,
    get: () => {
      if (!dir.made) {
        dir.path = join(root, `job-${jobId}-${randomBytes(6).toString("hex")}`);
        mkdirSync(dir.path, { recursive: true, mode: 0o700 });
        dir.made = true;
      }
      return dir.path;
    },
  };
  return dir;
}

/**
 * The job's temp dir and the files in it: readdir, an unlink each and rmdir, where `rm -r` also stats
 * the dir twice and every entry once, and tries rmdir before it empties it (nine calls for two files).
 */
async function removeJobDir(dir: string): Promise<void> {
  try {
    const names = await readdir(dir);
    await Promise.all(names.map((name) => unlink(join(dir, name))));
    await rmdir(dir);
  } catch {
    // A folder inside, a file written meanwhile, a dir already gone: the thorough way.
    await rm(dir, { recursive: true, force: true });
  }
}

async function runHandler(
  job: Parameters<typeof createJobContext>[0]["job"],
  rawInput: Record<string, unknown>,
  limits: JobLimits,
  tmpDir: () => string,
  signal: AbortSignal,
  deps: DeliveryDeps,
  log: Logger,
  usage: { runs: readonly ProviderRecord[] },
  seq: { last: number },
  release: () => void,
  access?: JobStorageAccess,
): Promise<JobResult> {
  const definition = getJobType(job.type);
  const handler = deps.handlers[job.type];
  if (!definition || !handler) throw new JobFailure("UNKNOWN_JOB_TYPE", `this worker does not run ${job.type} jobs`);
  const input = definition.input.safeParse(rawInput);
  if (!input.success) throw new JobFailure("INVALID_INPUT", `the job's input failed validation: ${input.error.issues[0]?.message ?? "invalid"}`);

  const { ctx, close } = createJobContext({ rpc: deps.rpc, events: deps.events, logger: log, job, definition, input: input.data, limits, signal, tmpDir, models: deps.models, storage: deps.storage, seq, eventDelayMs: deps.eventDelayMs, onUpload: release, access });
  usage.runs = ctx.models.runs;
  let succeeded = false;
  try {
    log.info({ type: job.type, attempt: job.attempt }, "job started");
    const output = await (handler as (ctx: JobContext) => Promise<JobOutput>)(ctx);
    const result = JobResult.safeParse(output);
    if (!result.success) throw new Error(`${job.type} handler returned an invalid result: ${result.error.message}`);
    succeeded = true;
    return result.data;
  } finally {
    await close(succeeded);
  }
}

/** Publishes what the owner must learn, then acknowledges the message the matching way. */
async function settle(msg: JsMsg, jobId: string, dispatch: number, outcome: Outcome, deps: DeliveryDeps, log: Logger, seq: { last: number }): Promise<void> {
  switch (outcome.kind) {
    case "dropped":
      log.info({ reason: outcome.reason }, "claim refused; dropping the delivery");
      msg.ack();
      return;
    case "succeeded":
      await finish(deps, jobId, dispatch, { status: "succeeded", result: outcome.result }, outcome.providerCostUsd, seq.last);
      msg.ack();
      log.info({ files: outcome.result.files.length }, "job succeeded");
      return;
    case "failed":
      log.warn({ err: outcome.cause, code: outcome.error.code }, "job failed");
      await finish(deps, jobId, dispatch, { status: "failed", error: outcome.error, ...(outcome.retryable ? { retryable: true } : {}) }, outcome.providerCostUsd ?? null, seq.last);
      // No reason string: nats-server before 2.11 does not recognise "+TERM <reason>" as a term.
      msg.term();
      return;
    case "retry":
      log.warn({ err: outcome.cause, delay_ms: outcome.delayMs }, "attempt failed; will retry");
      if (outcome.notice) {
        await deps.events.publish(jobId, { type: "log", level: "warn", message: outcome.notice }, { floor: seq.last }).catch((err) => log.warn({ err }, "could not publish the retry notice"));
      }
      handBack(msg, deps.maxAttempts, log, outcome.delayMs);
      return;
    case "canceled":
      log.info("job canceled; stopped working on it");
      msg.term();
      return;
    case "released":
      log.info("giving the job back for another worker");
      handBack(msg, deps.maxAttempts, log);
      return;
    case "lost": {
      log.warn({ code: outcome.error.code }, "every attempt of this job died without an ending; failing it without running it again");
      // Unclaimed: job-service applies it only while the job runs under this dispatch. Otherwise the job
      // ended or moved on, or no attempt claimed it and the reconciler dispatches it again.
      const { applied, status } = await finish(deps, jobId, dispatch, { status: "failed", error: outcome.error }, null, seq.last);
      if (!applied) log.info({ status }, "job-service did not fail the job: it is not running under this dispatch");
      msg.term();
      return;
    }
  }
}

/**
 * Gives a delivery that could not run back for another one, after `delayMs`. On the last attempt a
 * nak would come back past the limit, where the job is failed as lost (runDelivery), though this
 * attempt only could not run (job-service down, the worker stopping). So the message is termed
 * instead, and job-service's reconciler, finding the job overdue with its message gone, dispatches
 * it again with a fresh set of deliveries.
 */
export function handBack(msg: JsMsg, maxAttempts: number, log: Logger, delayMs?: number): void {
  if (msg.info.deliveryCount < maxAttempts) {
    msg.nak(delayMs);
    return;
  }
  log.warn({ seq: msg.seq, delivery: msg.info.deliveryCount }, "the last delivery of this job could not run; job-service's reconciler will dispatch it again");
  // No reason string: nats-server before 2.11 does not recognise "+TERM <reason>" as a term.
  msg.term();
}

/**
 * Reports the outcome to job-service, which records it, settles the credits and tells the owner.
 * A short outage is waited out here; a longer one throws, and the message is handed back (handBack).
 */
async function finish(deps: DeliveryDeps, jobId: string, dispatch: number, outcome: FinishBody["outcome"], providerCostUsd: number | null, lastEventSeq: number) {
  for (let attempt = 1; ; attempt++) {
    try {
      const body = { job_id: jobId, dispatch, outcome, last_event_seq: lastEventSeq, ...(providerCostUsd !== null ? { provider_cost_usd: providerCostUsd } : {}) };
      return await deps.rpc.call("job", "finish", body);
    } catch (err) {
      if (attempt >= 4 || !(isAppError(err) && err.code === "SERVICE_UNAVAILABLE")) throw err;
      await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    }
  }
}
