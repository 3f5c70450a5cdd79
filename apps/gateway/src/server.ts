import { connectNats, createLogger, createRpcClient, createStorageReplicas, announceReady, onShutdown, startMetricsListener, startTracing } from "@cutroom/runtime";
import { buildApp } from "./app.ts";
import { gatewayModels } from "./models.ts";
import { readEnv } from "./env.ts";
import { createTokenVerifier } from "./plugins/auth.ts";
import { createRequestBudget } from "./request-budget.ts";
import { createEventHub } from "./realtime/event-hub.ts";
import { watchTokenCutoffs } from "./token-cutoffs.ts";

const env = readEnv();
const log = createLogger("gateway", env.LOG_LEVEL);
const closeTracing = await startTracing(env, "gateway", log);

const nc = await connectNats(env, "gateway", log);
const rpc = createRpcClient(nc, { timeoutMs: env.RPC_TIMEOUT_MS });
const cutoffs = watchTokenCutoffs(nc, log);
const verifier = createTokenVerifier(rpc, cutoffs);
// The auth key is fetched now if auth-service is up, else on the first request that needs it.
await verifier.refresh().catch((err) => log.warn({ err: (err as Error).message }, "auth keys not available yet"));

const hub = createEventHub(nc, log);
// Watchers that start before the hub follows the stream could miss what is stored meanwhile; JetStream not up yet must not hold the gateway back for long.
if (!(await Promise.race([hub.ready.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), env.JOB_EVENTS_WAIT_MS).unref())]))) log.warn("not following job events yet: live watchers get events once JetStream answers");
const app = await buildApp({ rpc, nc, verifier, hub, log, storage: createStorageReplicas(env.STORAGE_INTERNAL_URL, { connectTimeoutMs: env.STORAGE_CONNECT_TIMEOUT_MS }), bodyLimit: env.BODY_LIMIT_BYTES, trustProxy: env.TRUST_PROXY, metricsToken: env.METRICS_TOKEN, corsOrigins: env.CORS_ORIGINS, requestTimeoutMs: env.REQUEST_TIMEOUT_MS, idleTimeoutMs: env.REQUEST_IDLE_TIMEOUT_MS, maxConnectionsPerUser: env.WS_MAX_CONNECTIONS_PER_USER, requestBudget: createRequestBudget({ free: env.RATE_LIMIT_FREE_PER_MINUTE, pro: env.RATE_LIMIT_PRO_PER_MINUTE, enterprise: env.RATE_LIMIT_ENTERPRISE_PER_MINUTE }), models: gatewayModels(env), promptEnhanceTimeoutMs: env.PROMPT_ENHANCE_TIMEOUT_MS, dashboardDir: env.DASHBOARD_DIR, workerGoneAfterMs: env.WORKER_GONE_AFTER_MS, workerHeartbeatMs: env.WORKER_HEARTBEAT_MS });
await app.listen({ port: env.PORT, host: env.HOST });

const closeMetrics = await startMetricsListener(env, log, app.metrics);

onShutdown(log, [() => app.close(), closeMetrics, async () => hub.close(), () => cutoffs.stop(), () => nc.drain(), closeTracing]);
// Tokens are refused (503) until the cutoffs are loaded; auth-service, up first, has made the bucket by now.
const cutoffsLoaded = await Promise.race([cutoffs.ready.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 10_000).unref())]);
if (!cutoffsLoaded) log.warn("token cutoffs not loaded yet: signed-in requests answer 503 until auth-service has started");
await announceReady(log, nc, { url: `http://localhost:${env.PORT}` });
