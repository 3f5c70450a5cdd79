import { createDb, runMigrations } from "@cutroom/db";
import { connectNats, createEventPublisher, createLogger, createRpcClient, ensureStreams, onShutdown, serveRpc } from "@cutroom/runtime";
import { createJobHandlers } from "./app.ts";
import { readEnv } from "./env.ts";

const env = readEnv();
const log = createLogger("job-service", env.LOG_LEVEL);

await runMigrations(env.DATABASE_URL);
const { db, close: closeDb } = createDb(env.DATABASE_URL);
const nc = await connectNats(env.NATS_URL, "job-service", log);
await ensureStreams(nc);
const rpc = createRpcClient(nc, { timeoutMs: env.RPC_TIMEOUT_MS });
const server = serveRpc(nc, "job", createJobHandlers({ db, nc, rpc, events: createEventPublisher(nc), log }), log);

onShutdown(log, [server.drain, () => nc.drain(), closeDb]);
log.info("ready");
