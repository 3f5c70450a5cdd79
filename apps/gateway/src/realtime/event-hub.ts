import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { JobEvent, streams, subjects } from "@cutroom/contracts";
import type { Logger, NatsConnection } from "@cutroom/runtime";

export type Listener = (event: JobEvent) => void;

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
 */
export function createEventHub(nc: NatsConnection, log: Logger, opts: { retryMs?: number } = {}) {
  const listeners = new Map<string, Set<Listener>>();
  let closed = false;
  let stopCurrent: (() => void) | undefined;
  let wake: (() => void) | undefined;
  let markReady: () => void;
  const ready = new Promise<void>((r) => (markReady = r));

  const dispatch = (msg: JsMsg) => {
    const watchers = listeners.get(msg.subject.slice("jobs.events.".length));
    if (!watchers) return;
    let parsed: ReturnType<typeof JobEvent.safeParse> | undefined;
    try {
      parsed = JobEvent.safeParse(msg.json());
    } catch {
      // Not JSON: dropped below like any other malformed message.
    }
    if (!parsed?.success) return log.warn({ subject: msg.subject, stream_seq: msg.seq }, "dropping a malformed job event");
    for (const l of watchers) {
      try {
        l(parsed.data);
      } catch (err) {
        log.error({ err, subject: msg.subject }, "a job event listener failed");
      }
    }
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
        const consumer = await jetstream(nc).consumers.get(streams.jobEvents.name, {
          // A single filter subject: `filter_subjects` needs nats-server 2.10.
          filter_subjects: subjects.jobEventsAll,
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

  return {
    /** Resolves once the first consumer is up: events published from then on reach listeners. */
    ready,
    listen(jobId: string, listener: Listener): () => void {
      let set = listeners.get(jobId);
      if (!set) listeners.set(jobId, (set = new Set()));
      set.add(listener);
      return () => {
        set!.delete(listener);
        if (set!.size === 0) listeners.delete(jobId);
      };
    },
    watchers: () => [...listeners.values()].reduce((n, s) => n + s.size, 0),
    close: async () => {
      closed = true;
      stopCurrent?.();
      wake?.();
      await following;
    },
  };
}
export type EventHub = ReturnType<typeof createEventHub>;
