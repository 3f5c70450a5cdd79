import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { JobEvent, PipelineEvent, isTerminalEvent, streams, subjects } from "@cutroom/contracts";
import type { Logger, NatsConnection } from "@cutroom/runtime";

export type Listener = (event: JobEvent) => void;
export type PipelineListener = (event: PipelineEvent) => void;
/** A project's channel: the events of its jobs and its pipelines. */
export type ProjectListener = (event: JobEvent | PipelineEvent) => void;

const RETRY_MS = 500;
const MAX_RETRY_MS = 5_000;

/**
 * One JetStream consumer per gateway process on JOB_EVENTS, fanned out in memory to the WebSocket
 * and SSE clients watching each job. It reads the stream, not core NATS: a publish the stream
 * refused (a wrong expected sequence) reaches core subscribers all the same, and must never reach
 * a client (docs/adr/020-clients-see-only-stored-events.md).
 *
 * nats.js's ordered consumer recreates itself from the last stream sequence it saw; after the stream
 * was made anew (a server that lost its store) that sequence means nothing and would skip the new
 * stream's first messages. So it is told to stop when its consumer or stream goes, and the loop here
 * starts another: after the last message seen when the stream is the same one (same `created`),
 * else from the new stream's start. It retries for as long as the process lives.
 *
 * The stream holds pipelines' events too (ADR 026), fanned out the same way. A project's channel
 * gets the events of its pipelines (which name their project) and of its jobs: a job's events name
 * their project only when job-service publishes them (queued, running, the ending), so the hub
 * remembers the jobs of each watched project from those and from `addProjectJobs`, and routes the
 * worker's events between by that.
 */
export function createEventHub(nc: NatsConnection, log: Logger, opts: { retryMs?: number } = {}) {
  const listeners = new Map<string, Set<Listener>>();
  const pipelineListeners = new Map<string, Set<PipelineListener>>();
  const projectListeners = new Map<string, Set<ProjectListener>>();
  // Jobs of the watched projects only: forgotten when a job ends or its project is no longer watched.
  const jobProject = new Map<string, string>();
  // A watched job's version: a fresh number each time an event of it is dispatched or its watchers
  // begin anew, so a read taken at one version misses nothing while it holds (docs/adr/035).
  const jobVersions = new Map<string, number>();
  let changes = 0;

  const each = <E>(watchers: Set<(e: E) => void> | undefined, event: E, subject: string) => {
    for (const l of watchers ?? []) {
      try {
        l(event);
      } catch (err) {
        log.error({ err, subject }, "an event listener failed");
      }
    }
  };
  const parse = <E>(schema: { safeParse: (raw: unknown) => { success: true; data: E } | { success: false } }, msg: JsMsg): E | undefined => {
    let parsed: ReturnType<typeof schema.safeParse> | undefined;
    try {
      parsed = schema.safeParse(msg.json());
    } catch {
      // Not JSON: dropped below like any other malformed message.
    }
    if (parsed?.success) return parsed.data;
    log.warn({ subject: msg.subject, stream_seq: msg.seq }, "dropping a malformed event");
    return undefined;
  };

  const dispatchPipeline = (msg: JsMsg) => {
    const watchers = pipelineListeners.get(msg.subject.slice(subjects.pipelineEvents("").length));
    if (!watchers && projectListeners.size === 0) return;
    const event = parse(PipelineEvent, msg);
    if (!event) return;
    each(watchers, event, msg.subject);
    if (event.project_id) each(projectListeners.get(event.project_id), event, msg.subject);
  };
  let closed = false;
  let stopCurrent: (() => void) | undefined;
  let wake: (() => void) | undefined;
  let markReady: () => void;
  const ready = new Promise<void>((r) => (markReady = r));

  const dispatch = (msg: JsMsg) => {
    if (msg.subject.startsWith(subjects.pipelineEvents(""))) return dispatchPipeline(msg);
    const jobId = msg.subject.slice(subjects.jobEvents("").length);
    const watchers = listeners.get(jobId);
    if (watchers) jobVersions.set(jobId, ++changes);
    if (!watchers && projectListeners.size === 0) return;
    const event = parse(JobEvent, msg);
    if (!event) return;
    each(watchers, event, msg.subject);
    const projectId = event.project_id ?? jobProject.get(jobId);
    const projectWatchers = projectId ? projectListeners.get(projectId) : undefined;
    if (!projectId || !projectWatchers) return;
    if (isTerminalEvent(event)) jobProject.delete(jobId);
    else jobProject.set(jobId, projectId);
    each(projectWatchers, event, msg.subject);
  };

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const follow = async () => {
    // Where the consumer stands: which stream (its creation time) and the last sequence delivered.
    let cursor: { created: string; seq: number } | undefined;
    let failures = 0;
    while (!closed && !nc.isClosed()) {
      try {
        const jsm = await jetstreamManager(nc, { checkAPI: false });
        const info = await jsm.streams.info(streams.jobEvents.name);
        const sameStream = cursor?.created === info.created;
        // First start: what comes next (as deliver policy `new`, but with a start sequence the ordered consumer can resume from).
        const from = sameStream ? cursor!.seq + 1 : cursor ? Math.max(1, info.state.first_seq) : info.state.last_seq + 1;
        if (cursor && !sameStream) log.warn({ stream: streams.jobEvents.name, created: info.created, from }, "the job events stream was made anew: following it from its start");
        const at = { created: info.created, seq: from - 1 };
        cursor = at;
        // No filter: the stream is jobs' and pipelines' events, and several filters need nats-server 2.10.
        const consumer = await jetstream(nc).consumers.get(streams.jobEvents.name, {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: from,
        });
        const messages = await consumer.consume({
          // Stop, rather than recreate the consumer at a sequence of a stream that may be gone.
          abort_on_missing_resource: true,
          callback: (msg) => {
            at.seq = msg.seq;
            dispatch(msg);
          },
        });
        stopCurrent = () => messages.stop();
        if (closed) messages.stop();
        if (failures > 0) log.info({ stream: streams.jobEvents.name, from }, "following job events again");
        failures = 0;
        markReady();
        const err = await messages.closed();
        stopCurrent = undefined;
        if (closed || nc.isClosed()) return;
        log.warn({ err: err ? (err as Error).message : undefined }, "the job events consumer stopped: starting another");
      } catch (err) {
        failures++;
        // Every failure while it is new, then one line in ten, so an outage does not flood the log.
        if (failures <= 3 || failures % 10 === 0) log.warn({ err: (err as Error).message, failures }, "cannot follow job events: retrying");
        await pause(Math.min((opts.retryMs ?? RETRY_MS) * failures, MAX_RETRY_MS));
      }
    }
  };
  const following = follow();

  const forgetVersion = (jobId: string) => jobVersions.delete(jobId);
  function add<L>(map: Map<string, Set<L>>, key: string, listener: L, onLast?: (key: string) => void): () => void {
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0 && map.get(key) === set) {
        map.delete(key);
        onLast?.(key);
      }
    };
  }

  return {
    /** Resolves once the first consumer is up: events published from then on reach listeners. */
    ready,
    listen(jobId: string, listener: Listener): () => void {
      if (!listeners.has(jobId)) jobVersions.set(jobId, ++changes);
      return add(listeners, jobId, listener, forgetVersion);
    },
    /**
     * The job's version while it has watchers: the same number as long as no event of it was
     * dispatched since, and no gap in its watchers; a number never handed out before otherwise.
     */
    jobVersion: (jobId: string): number => jobVersions.get(jobId) ?? ++changes,
    listenPipeline(pipelineId: string, listener: PipelineListener): () => void {
      return add(pipelineListeners, pipelineId, listener);
    },
    /** A project's channel. Live only: what its jobs and pipelines published before is theirs to replay. */
    listenProject(projectId: string, listener: ProjectListener): () => void {
      const remove = add(projectListeners, projectId, listener);
      return () => {
        remove();
        if (!projectListeners.has(projectId)) for (const [job, project] of jobProject) if (project === projectId) jobProject.delete(job);
      };
    },
    /** Jobs of a watched project that were running before it was watched: their worker's events name no project. */
    addProjectJobs(projectId: string, jobIds: string[]) {
      if (projectListeners.has(projectId)) for (const id of jobIds) jobProject.set(id, projectId);
    },
    watchers: () => [listeners, pipelineListeners, projectListeners].reduce((n, m) => n + [...m.values()].reduce((k, s) => k + s.size, 0), 0),
    close: async () => {
      closed = true;
      stopCurrent?.();
      wake?.();
      await following;
    },
  };
}
export type EventHub = ReturnType<typeof createEventHub>;
