import { mkdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { jobTypes, streams, type JobTypeName, type Queue } from "@cutroom/contracts";
import { createEventPublisher, createRpcClient, retrying, type Logger, type NatsConnection, type StorageReplicas } from "@cutroom/runtime";
import { jetstream, type ConsumerMessages } from "@nats-io/jetstream";
import { consumerName, ensureWorkerConsumer, reopenWorkerConsumer } from "./consumer.ts";
import { handBack, handleDelivery, stoppingReason, watchCancels, type DeliveryDeps } from "./delivery.ts";
import { countJobEndings, type JobStats } from "./job-stats.ts";
import { noModels, type ModelService } from "./models.ts";
import type { AnyJobHandler, JobHandlers } from "./types.ts";

export interface WorkerOptions {
  /** The process name, e.g. worker-image: used for the claim id and the health subject. */
  name: string;
  queue: Queue;
  handlers: JobHandlers;
}

export interface WorkerConfig {
  concurrency: number;
  ackWaitMs: number;
  maxAttempts: number;
  /** Delay before the first retry after a transient failure; each next one is 4× longer, at most 30 s. */
  retryBaseMs: number;
  /** How long stage and progress events wait before they are published; absent: DEFAULT_EVENT_DELAY_MS. */
  eventDelayMs?: number;
  tmpDir: string;
  rpcTimeoutMs: number;
  /** The models catalog and provider (createModelService); absent: the default catalog and no provider. */
  models?: ModelService;
  /** storage-service's replicas, which input and output transfers fail over between; absent: each URL as it is. */
  storage?: StorageReplicas;
}

export interface Worker {
  /**
   * Jobs in hand now (working, or uploading and reporting their results), the most this process works
   * on at once, the slots in use, whether it is draining, and whether its last pull worked.
   */
  load: () => { inFlight: number; concurrency: number; working: number; draining: boolean; pulling: boolean };
  /** The jobs it ended in the last hour and the last ones' durations (the registry's heartbeat). */
  stats: JobStats;
  /** Takes no new jobs (pulls no more; a message already on its way is handed back) and finishes those in hand. */
  drain: () => void;
  /** Takes jobs again after a drain. */
  resume: () => void;
  /**
   * Stops pulling, lets running jobs finish for up to `graceMs`, then aborts the rest, which
   * are handed back (see handBack) for another delivery. Resolves when every message is settled.
   */
  stop: (opts?: { graceMs?: number }) => Promise<void>;
}

/** Refuses to start unless the handlers are exactly the registry's job types for this queue. */
export function assertHandlers(queue: Queue, handlers: Record<string, unknown>): void {
  const expected = (Object.keys(jobTypes) as JobTypeName[]).filter((t) => jobTypes[t].queue === queue);
  const missing = expected.filter((t) => typeof handlers[t] !== "function");
  const unknown = Object.keys(handlers).filter((t) => !expected.includes(t as JobTypeName));
  if (missing.length > 0) throw new Error(`queue ${queue}: no handler for ${missing.join(", ")}`);
  if (unknown.length > 0) throw new Error(`queue ${queue}: handlers for job types it does not run: ${unknown.join(", ")}`);
}

// As JOB_EVENT_DELAY_MS's default, for workers started without it (tests).
const DEFAULT_EVENT_DELAY_MS = 200;

// Long enough that an idle worker does not hammer the server, short enough to notice a lost pull.
const PULL_EXPIRES_MS = 5000;
/**
 * The wait before the next pull after one failed (`previousMs` 0: the first failure): 1 s, doubling
 * to 10 s while JetStream stays away, so an outage is no request storm; a pull that works resets it.
 */
export const nextPullRetryMs = (previousMs: number) => (previousMs === 0 ? 1000 : Math.min(10_000, previousMs * 2));

/**
 * The consumer loop: pulls messages from the queue's durable consumer and hands each to
 * `handleDelivery`, which settles it exactly once. A message is pulled only for a free working slot,
 * of which there are `concurrency`. A job gives its slot back as its first upload starts (or when it
 * ends), so the next job's pull, claim and work overlap this one's upload, confirm and finish, which
 * only wait (ADR 028). Jobs working or uploading are at most twice `concurrency`; jobs whose attempt
 * has ended and which only wait on their finish and settle count apart, at most twice `concurrency`
 * too (ADR 045), so a finish's round trip never keeps a slot idle. At most four times as many
 * messages are held as slots.
 */
export async function startWorker(nc: NatsConnection, log: Logger, opts: WorkerOptions, config: WorkerConfig): Promise<Worker> {
  assertHandlers(opts.queue, opts.handlers);
  await mkdir(config.tmpDir, { recursive: true });
  let consumer = await retrying(
    async () => {
      await ensureWorkerConsumer(nc, opts.queue, config);
      return jetstream(nc).consumers.get(streams.jobs.name, consumerName(opts.queue));
    },
    "could not create or look up the worker's JetStream consumer; trying again",
    { log },
  );

  const counted = countJobEndings(createRpcClient(nc, { timeoutMs: config.rpcTimeoutMs }));
  const deps: DeliveryDeps = {
    nc,
    rpc: counted.rpc,
    events: createEventPublisher(nc),
    log,
    workerId: `${opts.name}-${process.pid}`,
    handlers: opts.handlers as Record<string, AnyJobHandler>,
    ackWaitMs: config.ackWaitMs,
    maxAttempts: config.maxAttempts,
    retryBaseMs: config.retryBaseMs,
    eventDelayMs: config.eventDelayMs ?? DEFAULT_EVENT_DELAY_MS,
    tmpRoot: config.tmpDir,
    models: config.models ?? noModels(),
    storage: config.storage,
    running: new Set(),
    cancels: watchCancels(nc),
  };
  const inFlight = new Set<Promise<void>>();
  let working = 0;
  // Deliveries whose attempt ended: only their finish and ack remain.
  let reporting = 0;
  const maxMoving = config.concurrency * 2;
  const maxReporting = config.concurrency * 2;
  let stopping = false;
  let wake = () => {};
  // Lets a loop waiting for a free slot see the stop at once, not when a job ends.
  const stopRequested = new Promise<void>((resolve) => (wake = resolve));
  // Set by a loop waiting for room; a slot given back or a delivery settled calls it.
  let roomChanged = () => {};
  const room = () => Math.min(config.concurrency - working, maxMoving - (inFlight.size - reporting), maxReporting - reporting);
  let batch: ConsumerMessages | undefined;
  let draining = false;
  let pulling = true;
  // Set by a loop waiting out a drain; resume and stop call it.
  let undrained = () => {};

  const pullLoop = async () => {
    let retryMs = 0;
    while (!stopping) {
      if (draining) {
        await Promise.race([new Promise<void>((resolve) => (undrained = resolve)), stopRequested]);
        continue;
      }
      if (room() <= 0) {
        await Promise.race([new Promise<void>((resolve) => (roomChanged = resolve)), stopRequested]);
        continue;
      }
      try {
        batch = await consumer.fetch({ max_messages: room(), expires: PULL_EXPIRES_MS });
        for await (const msg of batch) {
          if (stopping || draining) {
            handBack(msg, config.maxAttempts, log);
            continue;
          }
          working++;
          let released = false;
          const release = () => {
            if (released) return;
            released = true;
            working--;
            roomChanged();
          };
          let reported = false;
          const report = () => {
            if (reported) return;
            reported = true;
            reporting++;
            roomChanged();
          };
          const p: Promise<void> = handleDelivery(msg, deps, release, report).finally(() => {
            release();
            if (reported) reporting--;
            inFlight.delete(p);
            roomChanged();
          });
          inFlight.add(p);
        }
        if (retryMs > 0) log.info("pulling jobs again");
        retryMs = 0;
        pulling = true;
      } catch (err) {
        if (stopping) break;
        pulling = false;
        // Said once when pulls start failing; each retry is only a debug line.
        if (retryMs === 0) log.warn({ err }, "pulling jobs failed; trying again, less and less often, until JetStream answers");
        else log.debug({ err, retry_ms: retryMs }, "pulling jobs failed again");
        retryMs = nextPullRetryMs(retryMs);
        await Promise.race([sleep(retryMs, undefined, { ref: false }), stopRequested]);
        if (stopping) break;
        consumer = (await reopenWorkerConsumer(nc, opts.queue, config, log).catch(() => null)) ?? consumer;
      }
    }
  };
  const loop = pullLoop();

  return {
    load: () => ({ inFlight: inFlight.size, concurrency: config.concurrency, working, draining, pulling }),
    stats: counted.stats,
    drain() {
      if (!draining) log.info({ jobs: inFlight.size }, "draining: taking no new jobs, finishing those in hand");
      draining = true;
    },
    resume() {
      if (draining) log.info("resumed: taking jobs again");
      draining = false;
      undrained();
    },
    async stop({ graceMs = 10_000 } = {}) {
      stopping = true;
      wake();
      // The grace runs from the stop call: waiting for the loop must not add to it.
      const timer = sleep(graceMs, "deadline", { ref: false });
      await batch?.close();
      await loop;
      const finished = Promise.allSettled([...inFlight]);
      if ((await Promise.race([finished, timer])) === "deadline") {
        log.warn({ jobs: inFlight.size }, "jobs still running at the shutdown deadline; handing them back");
        for (const controller of deps.running) controller.abort(stoppingReason());
      }
      await finished;
      deps.cancels.close();
    },
  };
}
