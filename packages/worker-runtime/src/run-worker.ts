import { workerRegistryId, type WorkerName } from "@cutroom/contracts";
import { connectNats, newInstance, createLogger, createStorageReplicas, waitForStreams, announceReady, onShutdown, readWorkerInFlight, startMetricsListener, startTracing, workerConcurrency, type Logger, type NatsConnection } from "@cutroom/runtime";
import { readWorkerEnv } from "./env.ts";
import { serveWorkerHealth } from "./health.ts";
import { registerWorker } from "./registry.ts";
import { createModelService } from "./model-service.ts";
import type { ModelService } from "./models.ts";
import { assertHandlers, startWorker, type WorkerOptions } from "./worker.ts";

// Running jobs get this long to finish on SIGTERM before they are handed back to the queue.
const SHUTDOWN_GRACE_MS = 10_000;

export interface RunWorkerOptions extends WorkerOptions {
  /** Requests the worker answers besides its jobs (worker-image: synchronous model calls), with its connection and models. */
  serve?: (deps: { nc: NatsConnection; models: ModelService; log: Logger }) => { drain: () => Promise<void> };
}

/** A worker process from start to stop: what each worker's src/server.ts calls. */
export async function runWorker(opts: RunWorkerOptions): Promise<void> {
  assertHandlers(opts.queue, opts.handlers);
  const env = readWorkerEnv();
  const log = createLogger(opts.name, env.LOG_LEVEL);
  const closeTracing = await startTracing(env, opts.name, log);

  const nc = await connectNats(env, opts.name, log);
  // job-service makes the streams; a worker's NATS user may only read them.
  await waitForStreams(nc, log);
  const models = createModelService(env, nc, log);
  const worker = await startWorker(nc, log, opts, {
    concurrency: env.WORKER_CONCURRENCY,
    ackWaitMs: env.JOB_ACK_WAIT_MS,
    maxAttempts: env.JOB_MAX_ATTEMPTS,
    retryBaseMs: env.JOB_RETRY_BASE_MS,
    eventDelayMs: env.JOB_EVENT_DELAY_MS,
    tmpDir: env.WORKER_TMP_DIR,
    rpcTimeoutMs: env.RPC_TIMEOUT_MS,
    models,
    storage: createStorageReplicas(env.STORAGE_INTERNAL_URL, { connectTimeoutMs: env.STORAGE_CONNECT_TIMEOUT_MS }),
  });
  // One id for /health and the worker registry, usable as a subject token (its drain and resume subject).
  const base = newInstance(opts.name);
  const instance = { ...base, id: workerRegistryId(base.id), version: env.WORKER_VERSION };
  const health = serveWorkerHealth(nc, opts.name, opts.queue, worker, log, instance);
  const registration = registerWorker(nc, log, { id: instance.id, kind: opts.name as WorkerName, queue: opts.queue, instance, version: env.WORKER_VERSION, heartbeatMs: env.WORKER_HEARTBEAT_MS, worker });
  const served = opts.serve?.({ nc, models, log });

  readWorkerInFlight(opts.name, () => worker.load().inFlight);
  workerConcurrency.set({ worker: opts.name }, env.WORKER_CONCURRENCY);
  const closeMetrics = await startMetricsListener(env, log);
  onShutdown(log, [closeMetrics, async () => served?.drain(), () => (worker.drain(), registration.beat()), () => worker.stop({ graceMs: SHUTDOWN_GRACE_MS }), registration.stop, health.drain, () => nc.drain(), closeTracing], SHUTDOWN_GRACE_MS + 5000);
  await announceReady(log, nc, { queue: opts.queue, concurrency: env.WORKER_CONCURRENCY });
}
