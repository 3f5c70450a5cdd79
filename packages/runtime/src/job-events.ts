import { jetstreamManager, type JetStreamManager, type MsgRequest, type NextMsgRequest } from "@nats-io/jetstream";
import { JobEvent, PipelineEvent, isTerminalEvent, isTerminalPipelineEvent, streams, subjects, type JobEventInput, type PipelineEventInput } from "@cutroom/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import { publishToStream } from "./stream-publish.ts";
import { extractTrace, type Context } from "./tracing.ts";

const WRONG_LAST_SEQUENCE = 10071;

export interface JobEventPublisher {
  /**
   * Publishes the next event of a job, with its per-job `seq`; resolves once JetStream stored it.
   * With `unlessEnded`, nothing is published (null) when the job's last stored event is terminal.
   * `floor`: a seq the job is known to have reached (jobs.last_event_seq, a claim's); the event's
   * seq is above it even when the broker lost the job's stored events (ADR 020).
   * With `first`, nothing is published (null) unless it is the job's first event: a `queued` that
   * comes late must not be stored after the worker's `running`. With `whileQueued`, nothing is
   * published unless the job's last stored event is a `queued` status (a place in a line, ADR 037).
   */
  publish: (jobId: string, event: JobEventInput, opts?: { unlessEnded?: boolean; floor?: number; first?: boolean; whileQueued?: boolean }) => Promise<JobEvent | null>;
}

const CACHE_LIMIT = 10_000;

/** One kind of event with a per-key gap-free `seq` on its own subject: a job's, a pipeline's (ADR 026). */
interface EventKind<E extends { seq: number }, I> {
  what: string;
  subject: (key: string) => string;
  /** The event to store, validated. */
  build: (key: string, input: I, seq: number, timestamp: string) => E;
  /** A stored message as this kind of event; undefined when it is not one. */
  parse: (raw: unknown) => E | undefined;
  isTerminal: (e: E) => boolean;
  /** Whether the event leaves its job waiting (`queued`); false for kinds without a queue. */
  isQueued?: (e: E) => boolean;
}

const safely = <E>(schema: { safeParse: (raw: unknown) => { success: true; data: E } | { success: false } }) => (raw: unknown) => {
  const parsed = schema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
};

const jobEvents: EventKind<JobEvent, JobEventInput> = {
  what: "job",
  subject: subjects.jobEvents,
  build: (jobId, input, seq, timestamp) => JobEvent.parse({ ...input, job_id: jobId, seq, timestamp }),
  parse: safely(JobEvent),
  isTerminal: isTerminalEvent,
  isQueued: (e) => e.type === "status" && e.status === "queued",
};

const pipelineEvents: EventKind<PipelineEvent, PipelineEventInput> = {
  what: "pipeline",
  subject: subjects.pipelineEvents,
  build: (pipelineId, input, seq, timestamp) => PipelineEvent.parse({ ...input, pipeline_id: pipelineId, seq, timestamp }),
  parse: safely(PipelineEvent),
  isTerminal: isTerminalPipelineEvent,
};

export interface PipelineEventPublisher {
  /** As JobEventPublisher's publish, for a pipeline's events on `pipelines.events.<id>`. */
  publish: (pipelineId: string, event: PipelineEventInput, opts?: { unlessEnded?: boolean; floor?: number }) => Promise<PipelineEvent | null>;
}

/**
 * Every publisher of a job's events (job-service, any worker, a redelivered worker) shares one
 * gap-free `seq`: each publish says which stream sequence it expects last on the job's subject,
 * and on a mismatch re-reads the last stored event and tries again. The broker is the arbiter.
 * A seq never goes below one this process published or was given as a floor: after a store loss
 * the job's subject is empty, and restarting at 1 would hide the job's next events (its ending
 * too) from watchers and from job-service, which both drop a seq they have already passed.
 */
export function createEventPublisher(nc: NatsConnection): JobEventPublisher {
  return createSeqPublisher(nc, jobEvents);
}

/** A pipeline's events, by the very same arbitration as a job's. */
export function createPipelineEventPublisher(nc: NatsConnection): PipelineEventPublisher {
  return createSeqPublisher(nc, pipelineEvents);
}

function createSeqPublisher<E extends { seq: number }, I>(nc: NatsConnection, kind: EventKind<E, I>) {
  let jsm: JetStreamManager | undefined;
  const last = new Map<string, { streamSeq: number; seq: number; ended: boolean; queued?: boolean }>();
  const remember = (jobId: string, state: { streamSeq: number; seq: number; ended: boolean; queued?: boolean }) => {
    last.delete(jobId);
    last.set(jobId, state);
    // Jobs that end without a terminal event from this process would otherwise stay forever.
    if (last.size > CACHE_LIMIT) last.delete(last.keys().next().value!);
  };

  const readLast = async (jobId: string) => {
    jsm ??= await jetstreamManager(nc);
    const stored = await lastStored(nc, jsm, kind, jobId);
    const event = stored?.event;
    const storedSeq = event?.seq ?? 0;
    // What this process saw published beyond the store: the store lost it.
    const known = last.get(jobId);
    const lost = known !== undefined && known.seq > storedSeq;
    const state = {
      streamSeq: stored?.streamSeq ?? 0,
      seq: lost ? known.seq : storedSeq,
      ended: (event ? kind.isTerminal(event) : false) || (lost && known.ended),
      queued: !lost && event !== null && event !== undefined && (kind.isQueued?.(event) ?? false),
    };
    remember(jobId, state);
    return state;
  };

  // Publishes of one job from this process go one at a time; other processes are arbitrated by the broker.
  const queues = new Map<string, Promise<unknown>>();
  const publishOne = async (jobId: string, input: I, unlessEnded: boolean, floor: number, first = false, whileQueued = false): Promise<E | null> => {
      for (let attempt = 0; attempt < 20; attempt++) {
        // A first event needs no read: the broker's expected sequence 0 refuses it when the subject holds any.
        const prev = last.get(jobId) ?? (first && attempt === 0 ? { streamSeq: 0, seq: 0, ended: false } : await readLast(jobId));
        if (unlessEnded && prev.ended) return null;
        if (whileQueued && !prev.queued) return null;
        // The broker's expected-sequence check makes this hold against other processes too.
        if (first && (prev.streamSeq > 0 || prev.seq > 0 || floor > 0)) return null;
        const event = kind.build(jobId, input, Math.max(prev.seq, floor) + 1, new Date().toISOString());
        try {
          const ack = await publishToStream(nc, kind.subject(jobId), JSON.stringify(event), { expectLastSubjectSequence: prev.streamSeq });
          remember(jobId, { streamSeq: ack.seq, seq: event.seq, ended: kind.isTerminal(event), queued: kind.isQueued?.(event) ?? false });
          return event;
        } catch (err) {
          const code = (err as { api_error?: { err_code?: number }; code?: number }).api_error?.err_code;
          if (code !== WRONG_LAST_SEQUENCE && !/wrong last sequence/i.test((err as Error).message)) throw err;
          await readLast(jobId);
        }
      }
      throw new Error(`could not publish an event for ${kind.what} ${jobId}: too much contention`);
  };

  return {
    publish(jobId: string, input: I, opts: { unlessEnded?: boolean; floor?: number; first?: boolean; whileQueued?: boolean } = {}) {
      const next = (queues.get(jobId) ?? Promise.resolve()).catch(() => {}).then(() => publishOne(jobId, input, opts.unlessEnded ?? false, opts.floor ?? 0, opts.first, opts.whileQueued));
      queues.set(jobId, next);
      void next.finally(() => queues.get(jobId) === next && queues.delete(jobId)).catch(() => {});
      return next;
    },
  };
}

/**
 * The stream sequence of the last message on a job's subject, and its last event. Anything that may
 * publish there (a worker) could leave a message that is not an event: it is passed over, so it
 * spoils neither the replay nor the seq of the next event, which still follows it in the stream.
 */
async function lastStored<E extends { seq: number }>(nc: NatsConnection, jsm: JetStreamManager, kind: EventKind<E, never>, key: string): Promise<{ streamSeq: number; event: E | null } | null> {
  const stored = await jsm.streams.getMessage(streams.jobEvents.name, { last_by_subj: kind.subject(key) }).catch((err) => {
    if (/no message found|not found/i.test((err as Error).message)) return null;
    throw err;
  });
  if (!stored) return null;
  return { streamSeq: stored.seq, event: asEvent(kind, stored) ?? (await readEvents(nc, kind, key)).at(-1) ?? null };
}

/** A stored message as an event of the kind; undefined when it is not one. */
function asEvent<E extends { seq: number }>(kind: EventKind<E, never>, msg: { json: <T>() => T }): E | undefined {
  try {
    return kind.parse(msg.json());
  } catch {
    return undefined;
  }
}

/** The last stored event of one job, or null: one direct read, no consumer. */
export async function readLastJobEvent(nc: NatsConnection, jobId: string): Promise<JobEvent | null> {
  return (await lastStored(nc, await readerOf(nc), jobEvents, jobId))?.event ?? null;
}

/**
 * Reads the stored events of one job with `seq` greater than `since`, oldest first. Message gets
 * (`next_by_subj`), one per message on the job's subject: a consumer per call cost a consumer
 * create on the stream's leader per resume, and timed out when a NATS node was down.
 */
export async function readJobEvents(nc: NatsConnection, jobId: string, since = 0): Promise<JobEvent[]> {
  return readEvents(nc, jobEvents, jobId, since);
}

/** The last stored event of one pipeline, or null. */
export async function readLastPipelineEvent(nc: NatsConnection, pipelineId: string): Promise<PipelineEvent | null> {
  return (await lastStored(nc, await readerOf(nc), pipelineEvents, pipelineId))?.event ?? null;
}

/** The stored events of one pipeline with `seq` greater than `since`, oldest first, read as a job's are. */
export async function readPipelineEvents(nc: NatsConnection, pipelineId: string, since = 0): Promise<PipelineEvent[]> {
  return readEvents(nc, pipelineEvents, pipelineId, since);
}

async function readEvents<E extends { seq: number }>(nc: NatsConnection, kind: EventKind<E, never>, key: string, since = 0): Promise<E[]> {
  const jsm = await readerOf(nc);
  const subject = kind.subject(key);
  const events: E[] = [];
  for (let seq = 1; ; ) {
    // STREAM.MSG.GET takes `next_by_subj` (nats-server 2.9+); nats.js types only its direct-get variant.
    const query: NextMsgRequest = { seq, next_by_subj: subject };
    const stored = await jsm.streams.getMessage(streams.jobEvents.name, query as unknown as MsgRequest);
    if (!stored) return events;
    const e = asEvent(kind, stored);
    if (e && e.seq > since) events.push(e);
    seq = stored.seq + 1;
  }
}

/**
 * The trace a job was created in (ADR 036), as its first stored event carries it (the queued event job-service
 * published in the POST's trace): a dispatch made later (the reconciler's, a held job's) joins that trace.
 * Undefined when the event is gone (past the stream's day, a store loss) or carries none. Only when tracing.on.
 */
export async function readJobTrace(nc: NatsConnection, jobId: string): Promise<Context | undefined> {
  const query: NextMsgRequest = { seq: 1, next_by_subj: subjects.jobEvents(jobId) };
  const first = await (await readerOf(nc)).streams.getMessage(streams.jobEvents.name, query as unknown as MsgRequest).catch(() => null);
  return first?.header?.get("traceparent") ? extractTrace(first.header) : undefined;
}

// No account-info round trip per read: a missing JetStream shows on the read itself.
const readerOf = (nc: NatsConnection) => jetstreamManager(nc, { checkAPI: false });
