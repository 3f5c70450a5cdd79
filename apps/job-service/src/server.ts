import { createDb, runMigrations } from "@cutroom/db";
import { loadCatalog, providerAvailability } from "@cutroom/models";
import { connectNats, createEventPublisher, createLogger, createRpcClient, ensureStreams, announceReady, onShutdown, serveRpc } from "@cutroom/runtime";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createJobHandlers } from "./app.ts";
import { readEnv, timingFrom } from "./env.ts";
import { startEventsConsumer } from "./events-consumer.ts";
import { startReconciler } from "./reconciler.ts";

const env = readEnv();
const timing = timingFrom(env);
const log = createLogger("job-service", env.LOG_LEVEL);
const models = { catalog: loadCatalog({ overrideFile: env.MODEL_CATALOG_FILE }), provider: providerAvailability(env) };
log.info({ provider: models.provider }, "models: jobs needing a provider are refused without one");

await runMigrations(env.DATABASE_URL);
const { db, close: closeDb } = createDb(env.DATABASE_URL);
const nc = await connectNats(env, "job-service", log);
await ensureStreams(nc, { replicas: env.NATS_STREAM_REPLICAS });
const rpc = createRpcClient(nc, { timeoutMs: env.RPC_TIMEOUT_MS });

const server = serveRpc(nc, "job", createJobHandlers({ db, nc, rpc, events: createEventPublisher(nc), log, timing, models }), log);
const consumer = await startEventsConsumer({ db, nc, log, timing });
const reconciler = startReconciler({ db, js: jetstream(nc), jsm: await jetstreamManager(nc), rpc, log, timing });

onShutdown(log, [reconciler.stop, server.drain, consumer.stop, () => nc.drain(), closeDb]);
await announceReady(log, nc);
