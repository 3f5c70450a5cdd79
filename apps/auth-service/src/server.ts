import { createDb, runMigrations } from "@cutroom/db";
import { connectNats, createLogger, createRpcClient, announceReady, onShutdown, startMetricsListener, startTracing, retrying, serveRpc } from "@cutroom/runtime";
import { createAuthHandlers, loadSigningKey, openTokenCutoffs, republishRecentCutoffs } from "./app.ts";
import { readEnv } from "./env.ts";

const env = readEnv();
const log = createLogger("auth-service", env.LOG_LEVEL);
const closeTracing = await startTracing(env, "auth-service", log);

await runMigrations(env.DATABASE_URL);
const { db, close: closeDb } = createDb(env.DATABASE_URL);
const signingKey = await loadSigningKey(db);
const nc = await connectNats(env, "auth-service", log);
const cutoffs = await retrying(() => openTokenCutoffs(nc, { replicas: env.NATS_STREAM_REPLICAS }), "could not open the token cutoffs bucket; trying again", { log });
await republishRecentCutoffs(db, cutoffs, env.ACCESS_TOKEN_TTL_SECONDS, log);
const handlers = createAuthHandlers({
  db,
  rpc: createRpcClient(nc, { timeoutMs: env.RPC_TIMEOUT_MS }),
  signingKey,
  accessTokenTtlSeconds: env.ACCESS_TOKEN_TTL_SECONDS,
  refreshTokenTtlSeconds: env.REFRESH_TOKEN_TTL_SECONDS,
  signupCredits: env.SIGNUP_CREDITS,
  cutoffs,
  throttle: {
    loginFailuresPerAccount: env.AUTH_LOGIN_FAILURES_PER_ACCOUNT,
    loginFailuresWindowSeconds: env.AUTH_LOGIN_FAILURES_WINDOW_SECONDS,
    loginsPerAddressPerMinute: env.AUTH_LOGINS_PER_ADDRESS_PER_MINUTE,
    registrationsPerAddressPerHour: env.AUTH_REGISTRATIONS_PER_ADDRESS_PER_HOUR,
    refreshesPerAddressPerMinute: env.AUTH_REFRESHES_PER_ADDRESS_PER_MINUTE,
  },
});
const server = serveRpc(nc, "auth", handlers, log);

const closeMetrics = await startMetricsListener(env, log);
onShutdown(log, [closeMetrics, server.drain, () => nc.drain(), closeDb, closeTracing]);
await announceReady(log, nc, { kid: signingKey.kid });
