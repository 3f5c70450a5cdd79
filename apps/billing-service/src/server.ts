import { createDb, runMigrations } from "@cutroom/db";
import { connectNats, createLogger, announceReady, onShutdown, startMetricsListener, startTracing, serveRpc } from "@cutroom/runtime";
import { createBillingHandlers } from "./app.ts";
import { readEnv } from "./env.ts";

const env = readEnv();
const log = createLogger("billing-service", env.LOG_LEVEL);
const closeTracing = await startTracing(env, "billing-service", log);

await runMigrations(env.DATABASE_URL);
const { db, close: closeDb } = createDb(env.DATABASE_URL);
const nc = await connectNats(env, "billing-service", log);
if (env.BILLING_TEST_PURCHASES) log.warn("BILLING_TEST_PURCHASES is on: POST /billing/purchases adds credits without payment");
const server = serveRpc(nc, "billing", createBillingHandlers({ db, testPurchases: env.BILLING_TEST_PURCHASES }), log);

const closeMetrics = await startMetricsListener(env, log);
onShutdown(log, [closeMetrics, server.drain, () => nc.drain(), closeDb, closeTracing]);
await announceReady(log, nc);
