import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Logger } from "./logger.ts";

/**
 * This process's Prometheus metrics: the process's own (CPU, memory, event loop, GC) and every
 * Cutroom metric below, each listed in docs/METRICS.md. They are defined here once, for every app:
 * an app updates those of its part (job-service the jobs and credits, workers the provider calls),
 * the others stay without samples. Updates are prom-client's synchronous inc/observe, nothing awaited.
 */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry });

const registers = [metricsRegistry];
// Job runs last from milliseconds (a resize) to an hour (a long video at a model provider).
const jobSecondsBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export const jobsCreated = new Counter({ name: "cutroom_jobs_created_total", help: "Jobs created (committed with their reservation), by type", labelNames: ["type"], registers });
export const jobsStarted = new Counter({ name: "cutroom_jobs_started_total", help: "Job attempts started: a worker claimed the job (a retry counts again), by type", labelNames: ["type"], registers });
export const jobsFinished = new Counter({
  name: "cutroom_jobs_finished_total",
  help: "Jobs ended, by type and status (succeeded, failed, canceled)",
  labelNames: ["type", "status"],
  registers,
});
export const jobDuration = new Histogram({
  name: "cutroom_job_duration_seconds",
  help: "From a job's first start to its end, by type and status (jobs canceled before they started are not counted)",
  labelNames: ["type", "status"],
  buckets: jobSecondsBuckets,
  registers,
});
export const jobQueueWait = new Histogram({
  name: "cutroom_job_queue_wait_seconds",
  help: "From a job's creation to its first start (waits for a concurrency slot included), by type",
  labelNames: ["type"],
  buckets: jobSecondsBuckets,
  registers,
});
export const queueDepth = new Gauge({
  name: "cutroom_queue_depth",
  help: "Jobs dispatched to a queue that no worker has taken yet (its JetStream consumer's pending messages), by queue",
  labelNames: ["queue"],
  registers,
  async collect() {
    await readSources(this, queueDepthSources);
  },
});
export const workerJobsInFlight = new Gauge({
  name: "cutroom_worker_jobs_in_flight",
  help: "Jobs this worker process holds now (working, or uploading and reporting), by worker",
  labelNames: ["worker"],
  registers,
  async collect() {
    await readSources(this, inFlightSources);
  },
});
export const workerConcurrency = new Gauge({
  name: "cutroom_worker_concurrency",
  help: "The most jobs this worker process works on at once (WORKER_CONCURRENCY), by worker",
  labelNames: ["worker"],
  registers,
});
export const providerCalls = new Counter({
  name: "cutroom_provider_calls_total",
  help: "Model runs at a provider (replicate, emulator), by provider, model and outcome (succeeded, failed, canceled)",
  labelNames: ["provider", "model", "outcome"],
  registers,
});
export const providerCallDuration = new Histogram({
  name: "cutroom_provider_call_duration_seconds",
  help: "A model run at a provider, from its request to its prediction's end, by provider and model",
  labelNames: ["provider", "model"],
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
  registers,
});
export const providerCost = new Counter({
  name: "cutroom_provider_cost_usd_total",
  help: "What model providers charged for runs, in USD (0 for the emulator), by provider and model",
  labelNames: ["provider", "model"],
  registers,
});
export const creditsReserved = new Counter({ name: "cutroom_credits_reserved_total", help: "Credits reserved by created jobs, by job type", labelNames: ["type"], registers });
export const creditsCaptured = new Counter({ name: "cutroom_credits_captured_total", help: "Credits charged for succeeded jobs, by job type", labelNames: ["type"], registers });
export const creditsReleased = new Counter({ name: "cutroom_credits_released_total", help: "Reserved credits given back (failed or canceled jobs), by job type", labelNames: ["type"], registers });
export const realtimeConnections = new Gauge({
  name: "cutroom_realtime_connections",
  help: "Open WebSocket and SSE connections of this gateway, by protocol (websocket, sse)",
  labelNames: ["protocol"],
  registers,
});

type Source = { labels: Record<string, string>; read: () => number | Promise<number> };
const queueDepthSources = new Set<Source>();
const inFlightSources = new Set<Source>();

async function readSources(gauge: Gauge, sources: Set<Source>) {
  gauge.reset();
  await Promise.all(
    [...sources].map(async (s) => {
      // A source that cannot answer now (JetStream down) leaves its series out of this scrape.
      const value = await Promise.resolve().then(s.read).catch(() => undefined);
      if (value !== undefined) gauge.set(s.labels, value);
    }),
  );
}

function addSource(sources: Set<Source>, source: Source) {
  sources.add(source);
  return () => void sources.delete(source);
}

/** Reads a queue's depth at each scrape; returns the unregistering function. */
export const readQueueDepth = (queue: string, read: () => Promise<number>) => addSource(queueDepthSources, { labels: { queue }, read });
/** Reads a worker's jobs in flight at each scrape; returns the unregistering function. */
export const readWorkerInFlight = (worker: string, read: () => number) => addSource(inFlightSources, { labels: { worker }, read });

/** Times one call: the seconds since this was called, when the returned function is. */
export function stopwatch(): () => number {
  const started = performance.now();
  return () => (performance.now() - started) / 1000;
}

/** Seconds from one timestamp to another, or undefined when either is missing or they run backwards. */
export function secondsBetween(from: Date | string | null | undefined, to: Date | string | null | undefined): number | undefined {
  if (!from || !to) return undefined;
  const s = (new Date(to).getTime() - new Date(from).getTime()) / 1000;
  return Number.isFinite(s) && s >= 0 ? s : undefined;
}

/**
 * /metrics without authentication on a listener of its own (METRICS_PORT), for a scraper on a
 * private interface (METRICS_HOST); everything else there is 404. `registry` defaults to this
 * process's own.
 */
export async function serveMetrics(opts: { port: number; host: string; registry?: Registry }) {
  const registry = opts.registry ?? metricsRegistry;
  const server = createServer((req, res) => {
    if (req.method !== "GET" || req.url?.split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      () => res.writeHead(500, { "content-type": "text/plain" }).end("metrics unavailable\n"),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Starts the metrics listener when METRICS_PORT is set (see BaseEnv); a closing function for onShutdown either way. */
export async function startMetricsListener(env: { METRICS_PORT?: number | undefined; METRICS_HOST: string }, log: Logger, registry?: Registry): Promise<() => Promise<void>> {
  if (!env.METRICS_PORT) return async () => {};
  const listener = await serveMetrics({ port: env.METRICS_PORT, host: env.METRICS_HOST, ...(registry ? { registry } : {}) });
  log.info({ port: listener.port, host: env.METRICS_HOST }, "metrics listener up");
  return listener.close;
}
