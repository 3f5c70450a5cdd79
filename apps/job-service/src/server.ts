import { createDb, runMigrations } from "@cutroom/db";
import { loadCatalog, providerAvailability } from "@cutroom/models";
import { connectNats, createEventPublisher, createLogger, createRpcClient, ensureStreams, keepStreams, retrying, announceReady, onShutdown, readQueueDepth, serveRpc, startMetricsListener, startTracing } from "@cutroom/runtime";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { consumers, loadPipelineTypes, Queue, streams } from "@cutroom/contracts";
import { createJobService } from "./app.ts";
import { readEnv, timingFrom } from "./env.ts";
import { startEventsConsumer } from "./events-consumer.ts";
import { jobDbOptions } from "./job-store.ts";
import { startReconciler } from "./reconciler.ts";

const env = readEnv();
const timing = timingFrom(env);
const log = createLogger("job-service", env.LOG_LEVEL);
const closeTracing = await startTracing(env, "job-service", log);
const models = { catalog: loadCatalog({ overrideFile: env.MODEL_CATALOG_FILE }), provider: providerAvailability(env) };
log.info({ provider: models.provider }, "models: jobs needing a provider are refused without one");

await runMigrations(env.DATABASE_URL);
const { db, close: closeDb } = createDb(env.DATABASE_URL, jobDbOptions);
const nc = await connectNats(env, "job-service", log);
// Retries until JetStream is up; NATS_STREAM_REPLICAS counts only for a stream made now.
await ensureStreams(nc, { replicas: env.NATS_STREAM_REPLICAS, log });
const rpc = createRpcClient(nc, { timeoutMs: env.RPC_TIMEOUT_MS });

// A bad type or flavor file stops the start, naming the file.
const pipelineTypes = loadPipelineTypes({ flavorsDir: env.PIPELINE_FLAVORS_DIR });
log.info({ pipeline_types: [...pipelineTypes.keys()] }, "pipeline types loaded");
const { handlers, pipelines } = createJobService({ db, nc, rpc, events: createEventPublisher(nc), log, timing, models, pipelineTypes, createBatchMax: env.JOB_CREATE_BATCH_MAX });
const server = serveRpc(nc, "job", handlers, log);
const consumer = await startEventsConsumer({ db, nc, log, timing, pipelines });
const jsm = await retrying(() => jetstreamManager(nc), "could not reach JetStream; trying again", { log });
const reconciler = startReconciler({ db, nc, js: jetstream(nc), jsm, rpc, log, timing, events: createEventPublisher(nc), pipelines });
// A server back with an empty store lost the streams: make them again, at the reconciler's pace (the
// events consumer makes itself again once JOB_EVENTS is back).
const streamKeeper = keepStreams(nc, { replicas: env.NATS_STREAM_REPLICAS, log, everyMs: timing.reconcileIntervalMs });

// Read at each scrape: what waits in the broker for each kind of worker, seen from a process that is always up.
for (const queue of Queue.options) readQueueDepth(queue, async () => (await jsm.consumers.info(streams.jobs.name, consumers.worker(queue))).num_pending);
const closeMetrics = await startMetricsListener(env, log);

onShutdown(log, [closeMetrics, streamKeeper.stop, reconciler.stop, server.drain, () => consumer.stop(), () => nc.drain(), closeDb, closeTracing]);
await announceReady(log, nc);
