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

/** What following differs in between a job and a pipeline (ADR 026): the rest is one procedure. */
interface Followed<S, E extends { seq: number }> {
  what: "job" | "pipeline";
  id: string;
  listen: (listener: (e: E) => void) => () => void;
  snapshot: () => Promise<S>;
  /** The snapshot says it has ended. */
  ended: (snapshot: S) => boolean;
  read: (since: number) => Promise<E[]>;
  readLast: () => Promise<E | null>;
  isTerminal: (e: E) => boolean;
}

/**
 * Follows one job for one client: the snapshot first, then the stored events after `since`
 * (or, when the job has ended, its terminal event), then live events, in seq order with
 * no gaps or repeats. Live events are buffered while the replay is read, so none slip between.
 * Throws NOT_FOUND (AppError) when the job is not the caller's, SERVICE_UNAVAILABLE when the stored
 * events cannot be read (NATS down or not answering), logged on `log` (the request's, with its id).
 */
export async function followJob(opts: FollowOpts<StreamItem> & { jobId: string }): Promise<() => void> {
  const { hub, nc, jobId, coalesce, caller } = opts;
  return follow(opts, {
    what: "job",
    id: jobId,
    listen: (l) => hub.listen(jobId, l),
    snapshot: async () => {
      // What job.get answers depends on who asks (another user's job is NOT_FOUND): shared by the same caller only.
      const job = await coalesce(`job:${jobId}:${callerKey(caller)}`, () => opts.rpc.call("job", "get", { job_id: jobId }, { requestId: opts.requestId, caller }));
      opts.send({ type: "snapshot", job });
      return job;
    },
    ended: (job) => terminalStatuses.includes(job.status),
    read: (since) => coalesce(`job-events:${jobId}:${since}`, () => readJobEvents(nc, jobId, since)),
    readLast: () => coalesce(`job-last:${jobId}`, () => readLastJobEvent(nc, jobId)),
    isTerminal: isTerminalEvent,
  });
}

/** Follows one pipeline as followJob follows a job: GET /pipelines/{id} as the snapshot, its events, closing after pipeline_completed. */
export async function followPipeline(opts: FollowOpts<PipelineStreamItem> & { pipelineId: string }): Promise<() => void> {
  const { hub, nc, pipelineId, coalesce, caller } = opts;
  return follow(opts, {
    what: "pipeline",
    id: pipelineId,
    listen: (l) => hub.listenPipeline(pipelineId, l),
    snapshot: async () => {
      const pipeline = await coalesce(`pipeline:${pipelineId}:${callerKey(caller)}`, () =>
        opts.rpc.call("job", "getPipeline", { pipeline_id: pipelineId }, { requestId: opts.requestId, caller }),
      );
      opts.send({ type: "snapshot", pipeline });
      return pipeline;
    },
    ended: (pipeline) => pipelineTerminalStatuses.includes(pipeline.status),
    read: (since) => coalesce(`pipeline-events:${pipelineId}:${since}`, () => readPipelineEvents(nc, pipelineId, since)),
    readLast: () => coalesce(`pipeline-last:${pipelineId}`, () => readLastPipelineEvent(nc, pipelineId)),
    isTerminal: isTerminalPipelineEvent,
  });
}

const callerKey = (c: Caller) => `${c.user_id}:${c.role}:${c.tier}`;

async function follow<S, E extends { seq: number }, Item>(opts: FollowOpts<Item>, it: Followed<S, E>): Promise<() => void> {
  const send = opts.send as unknown as (e: E) => void;
  let lastSeq = opts.since ?? 0;
  let replaying = true;
  let ended = false;
  const buffered: E[] = [];

  const deliver = (e: E) => {
    if (ended || e.seq <= lastSeq) return;
    lastSeq = e.seq;
    send(e);
    if (it.isTerminal(e)) {
      ended = true;
      stop();
      opts.onEnd();
    }
  };
  const stop = it.listen((e) => (replaying ? buffered.push(e) : deliver(e)));

  try {
    const snapshot = await it.snapshot();
    if (opts.since !== undefined) {
      for (const e of await history(opts, it, () => it.read(opts.since!))) deliver(e);
    } else {
      // A fresh watcher gets live events only, but always the ending if there already is one.
      const last = await history(opts, it, () => it.readLast());
      if (last && it.isTerminal(last)) {
        lastSeq = last.seq - 1;
        deliver(last);
      } else {
        lastSeq = last?.seq ?? 0;
      }
    }
    // Events older than the stream keeps: the snapshot alone tells it has ended.
    if (!ended && it.ended(snapshot) && !buffered.some(it.isTerminal)) {
      ended = true;
      stop();
      opts.onEnd();
      return () => {};
    }
    replaying = false;
    for (const e of buffered.sort((a, b) => a.seq - b.seq)) deliver(e);
  } catch (err) {
    stop();
    throw err;
  }
  return () => {
    ended = true;
    stop();
  };
}

/** A read of the stored events; its failure is the events store being unavailable, not a bug (503). */
async function history<T>(opts: { log: Pick<Logger, "warn">; since?: number }, it: { what: string; id: string }, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    opts.log.warn({ err, [`${it.what}_id`]: it.id, since: opts.since }, `could not read the ${it.what}'s stored events`);
    throw new AppError("SERVICE_UNAVAILABLE", `${it.what} events are unavailable right now; try again shortly`, { service: "events" });
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
