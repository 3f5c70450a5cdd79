import { connectNats, createLogger, createRpcClient, announceReady, onShutdown } from "@cutroom/runtime";
import { buildApp } from "./app.ts";
import { readEnv } from "./env.ts";
import { createTokenVerifier } from "./plugins/auth.ts";
import { createEventHub } from "./realtime/event-hub.ts";

const env = readEnv();
const log = createLogger("gateway", env.LOG_LEVEL);

const nc = await connectNats(env.NATS_URL, "gateway", log);
const rpc = createRpcClient(nc, { timeoutMs: env.RPC_TIMEOUT_MS });
const verifier = createTokenVerifier(rpc);
// The auth key is fetched now if auth-service is up, else on the first request that needs it.
await verifier.refresh().catch((err) => log.warn({ err: (err as Error).message }, "auth keys not available yet"));

const hub = createEventHub(nc, log);
const app = await buildApp({ rpc, nc, verifier, hub, log, storageUrl: env.STORAGE_INTERNAL_URL, bodyLimit: env.BODY_LIMIT_BYTES });
await app.listen({ port: env.PORT, host: env.HOST });

onShutdown(log, [() => app.close(), async () => hub.close(), () => nc.drain()]);
await announceReady(log, nc, { url: `http://localhost:${env.PORT}` });
