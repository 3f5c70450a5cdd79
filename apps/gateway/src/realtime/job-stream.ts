import { AppError, isTerminalEvent, isTerminalPipelineEvent, pipelineTerminalStatuses, terminalStatuses, type Caller, type Job, type JobEvent, type Pipeline, type PipelineEvent, type Project } from "@cutroom/contracts";
import { readJobEvents, readLastJobEvent, readLastPipelineEvent, readPipelineEvents, type Logger, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import type { Coalesce } from "./coalesce.ts";
import type { EventHub } from "./event-hub.ts";

export type StreamItem = { type: "snapshot"; job: Job } | JobEvent;
export type PipelineStreamItem = { type: "snapshot"; pipeline: Pipeline } | PipelineEvent;
export type ProjectStreamItem = { type: "snapshot"; project: Project } | ((JobEvent | PipelineEvent) & { project_id: string });

interface FollowOpts<Item> {
  rpc: RpcClient;
  nc: NatsConnection;
  hub: EventHub;
  /** Shares the snapshot and stored-event reads of clients opening the same job at once. */
  coalesce: Coalesce;
  caller: Caller;
  requestId: string;
  log: Pick<Logger, "warn">;
  since?: number;
  send: (item: Item) => void;
  onEnd: () => void;
}

/**
 * What following differs in between a job and a pipeline (ADR 026): the rest is one procedure.
 * One object per kind, not closures per client: a gateway holds tens of thousands of watches, and
 * tsx names every closure it makes (a property array each), so per-client state lives in a `Watch`.
 */
interface Kind<S, E extends { seq: number }> {
  what: "job" | "pipeline";
  listen(hub: EventHub, id: string, listener: (e: E) => void): () => void;
  /** Reads the snapshot (shared with the same caller's other clients opening it now) and sends it. */
  snapshot(opts: FollowOpts<never>, id: string): Promise<S>;
  /** The snapshot says it has ended. */
  ended(snapshot: S): boolean;
  read(opts: FollowOpts<never>, id: string, since: number): Promise<E[]>;
  readLast(opts: FollowOpts<never>, id: string): Promise<E | null>;
  isTerminal(e: E): boolean;
}

const callerKey = (c: Caller) => `${c.user_id}:${c.role}:${c.tier}`;

// Clients sharing one read of a job get one snapshot object, so it is serialised once for all (docs/adr/035).
const jobSnapshots = new WeakMap<Job, StreamItem>();
const jobSnapshot = (job: Job) => {
  let item = jobSnapshots.get(job);
  if (!item) jobSnapshots.set(job, (item = { type: "snapshot", job }));
  return item;
};

/**
 * A job's reads are shared while the hub dispatched none of its events (docs/adr/035): every watcher
 * listens before it reads, so an event stored after a shared read began reaches it live.
 */
const jobKind: Kind<Job, JobEvent> = {
  what: "job",
  listen: (hub, id, listener) => hub.listen(id, listener),
  async snapshot(opts, id) {
    // What job.get answers depends on who asks (another user's job is NOT_FOUND): shared by the same caller only.
    const job = await opts.coalesce(
      `job:${id}:${callerKey(opts.caller)}`,
      () => opts.rpc.call("job", "get", { job_id: id }, { requestId: opts.requestId, caller: opts.caller }),
      () => opts.hub.jobVersion(id),
    );
    (opts.send as (item: StreamItem) => void)(jobSnapshot(job));
    return job;
  },
  ended: (job) => terminalStatuses.includes(job.status),
  read: (opts, id, since) => opts.coalesce(`job-events:${id}:${since}`, () => readJobEvents(opts.nc, id, since), () => opts.hub.jobVersion(id)),
  readLast: (opts, id) => opts.coalesce(`job-last:${id}`, () => readLastJobEvent(opts.nc, id), () => opts.hub.jobVersion(id)),
  isTerminal: isTerminalEvent,
};

const pipelineKind: Kind<Pipeline, PipelineEvent> = {
  what: "pipeline",
  listen: (hub, id, listener) => hub.listenPipeline(id, listener),
  async snapshot(opts, id) {
    const pipeline = await opts.coalesce(`pipeline:${id}:${callerKey(opts.caller)}`, () =>
      opts.rpc.call("job", "getPipeline", { pipeline_id: id }, { requestId: opts.requestId, caller: opts.caller }),
    );
    (opts.send as (item: PipelineStreamItem) => void)({ type: "snapshot", pipeline });
    return pipeline;
  },
  ended: (pipeline) => pipelineTerminalStatuses.includes(pipeline.status),
  read: (opts, id, since) => opts.coalesce(`pipeline-events:${id}:${since}`, () => readPipelineEvents(opts.nc, id, since)),
  readLast: (opts, id) => opts.coalesce(`pipeline-last:${id}`, () => readLastPipelineEvent(opts.nc, id)),
  isTerminal: isTerminalPipelineEvent,
};

/**
 * Follows one job for one client: the snapshot first, then the stored events after `since`
 * (or, when the job has ended, its terminal event), then live events, in seq order with
 * no gaps or repeats. Live events are buffered while the replay is read, so none slip between.
 * Throws NOT_FOUND (AppError) when the job is not the caller's, SERVICE_UNAVAILABLE when the stored
 * events cannot be read (NATS down or not answering), logged on `log` (the request's, with its id).
 */
export function followJob(opts: FollowOpts<StreamItem> & { jobId: string }): Promise<() => void> {
  return new Watch(opts as FollowOpts<never>, jobKind, opts.jobId).start();
}

/** Follows one pipeline as followJob follows a job: GET /pipelines/{id} as the snapshot, its events, closing after pipeline_completed. */
export function followPipeline(opts: FollowOpts<PipelineStreamItem> & { pipelineId: string }): Promise<() => void> {
  return new Watch(opts as FollowOpts<never>, pipelineKind, opts.pipelineId).start();
}

class Watch<S, E extends { seq: number }> {
  private lastSeq: number;
  private replaying = true;
  private ended = false;
  private buffered: E[] = [];
  private readonly stopListening: () => void;

  constructor(
    private readonly opts: FollowOpts<never>,
    private readonly kind: Kind<S, E>,
    private readonly id: string,
  ) {
    this.lastSeq = opts.since ?? 0;
    this.stopListening = kind.listen(opts.hub, id, (e) => (this.replaying ? this.buffered.push(e) : this.deliver(e)));
  }

  private deliver(e: E) {
    if (this.ended || e.seq <= this.lastSeq) return;
    this.lastSeq = e.seq;
    (this.opts.send as (e: E) => void)(e);
    if (this.kind.isTerminal(e)) this.finish();
  }

  private finish() {
    this.ended = true;
    this.stopListening();
    this.opts.onEnd();
  }

  async start(): Promise<() => void> {
    const { opts, kind, id } = this;
    try {
      const snapshot = await kind.snapshot(opts, id);
      if (opts.since !== undefined) {
        for (const e of await history(opts, kind, id, () => kind.read(opts, id, opts.since!))) this.deliver(e);
      } else {
        // A fresh watcher gets live events only, but always the ending if there already is one.
        const last = await history(opts, kind, id, () => kind.readLast(opts, id));
        if (last && kind.isTerminal(last)) {
          this.lastSeq = last.seq - 1;
          this.deliver(last);
        } else {
          this.lastSeq = last?.seq ?? 0;
        }
      }
      // Events older than the stream keeps: the snapshot alone tells it has ended.
      if (!this.ended && kind.ended(snapshot) && !this.buffered.some(kind.isTerminal)) {
        this.finish();
        return () => {};
      }
      this.replaying = false;
      const buffered = this.buffered.sort((a, b) => a.seq - b.seq);
      this.buffered = [];
      for (const e of buffered) this.deliver(e);
    } catch (err) {
      this.stopListening();
      throw err;
    }
    return () => {
      this.ended = true;
      this.stopListening();
    };
  }
}

/** A read of the stored events; its failure is the events store being unavailable, not a bug (503). */
async function history<T>(opts: { log: Pick<Logger, "warn">; since?: number }, kind: { what: string }, id: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    opts.log.warn({ err, [`${kind.what}_id`]: id, since: opts.since }, `could not read the ${kind.what}'s stored events`);
    throw new AppError("SERVICE_UNAVAILABLE", `${kind.what} events are unavailable right now; try again shortly`, { service: "events" });
  }
}

const ACTIVE_JOBS_READ = 100;

/**
 * Follows a project's channel for one client: the project as the snapshot (NOT_FOUND when it is not
 * the caller's), then the live events of its jobs and pipelines, each tagged with `project_id`.
 * Live only, no `since`: a client resumes a job or pipeline on its own channel. Its jobs already
 * running are made known to the hub (up to a hundred each of running and queued), so the worker's
 * events, which name no project, reach the channel too.
 */
export async function followProject(opts: Omit<FollowOpts<ProjectStreamItem>, "since" | "nc" | "onEnd" | "coalesce"> & { projectId: string }): Promise<() => void> {
  const { hub, projectId } = opts;
  const ctx = { requestId: opts.requestId, caller: opts.caller };
  let ready = false;
  const buffered: (JobEvent | PipelineEvent)[] = [];
  const stop = hub.listenProject(projectId, (e) => (ready ? opts.send({ ...e, project_id: projectId }) : buffered.push(e)));
  try {
    const project = await opts.rpc.call("job", "getProject", { project_id: projectId }, ctx);
    const active = await Promise.all((["running", "queued"] as const).map((status) => opts.rpc.call("job", "list", { project_id: projectId, status, limit: ACTIVE_JOBS_READ, offset: 0 }, ctx)));
    hub.addProjectJobs(projectId, active.flatMap((page) => page.data.map((j) => j.id)));
    opts.send({ type: "snapshot", project });
    ready = true;
    for (const e of buffered) opts.send({ ...e, project_id: projectId });
  } catch (err) {
    stop();
    throw err;
  }
  return stop;
}
