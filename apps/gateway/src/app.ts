import cors from "@fastify/cors";
import formbody from "@fastify/formbody";
import multipart from "@fastify/multipart";
import websocket from "@fastify/websocket";
import type { Logger, NatsConnection, RpcClient, StorageReplicas } from "@cutroom/runtime";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { authPlugin, type TokenVerifier } from "./plugins/auth.ts";
import { connectionsPlugin } from "./plugins/connections.ts";
import { clientErrorHandler, errorsPlugin, frameworkErrors } from "./plugins/errors.ts";
import { jsonBodyPlugin } from "./plugins/json-body.ts";
import { metricsPlugin } from "./plugins/metrics.ts";
import { openapiPlugin } from "./plugins/openapi.ts";
import { securityHeadersPlugin } from "./plugins/security-headers.ts";
import { tracingPlugin } from "./plugins/tracing.ts";
import { adminRoutes } from "./routes/admin.ts";
import { authRoutes } from "./routes/auth.ts";
import { billingRoutes } from "./routes/billing.ts";
import { dashboardRoutes } from "./routes/dashboard.ts";
import { fileRoutes } from "./routes/files.ts";
import { healthRoutes } from "./routes/health.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { pipelineRoutes } from "./routes/pipelines.ts";
import { projectRoutes } from "./routes/projects.ts";
import { promptRoutes } from "./routes/prompts.ts";
import { storageProxy } from "./routes/storage-proxy.ts";
import { tusExposedHeaders, uploadRoutes } from "./routes/uploads.ts";
import { webhookRoutes } from "./routes/webhooks.ts";
import { workerApiRoutes } from "./routes/worker-api.ts";
import { workerRoutes } from "./routes/workers.ts";
import { watchWorkerRegistry, type WorkerRegistry } from "./worker-registry.ts";
import { httpWorkerRecorder } from "./http-worker-registry.ts";
import { realtimeRoutes } from "./routes/realtime.ts";
import { createConnectionLimit } from "./realtime/connection-limit.ts";
import type { EventHub } from "./realtime/event-hub.ts";
import type { GatewayModels } from "./models.ts";
import type { RequestBudget } from "./request-budget.ts";

export interface GatewayDeps {
  rpc: RpcClient;
  nc: NatsConnection;
  verifier: TokenVerifier;
  hub: EventHub;
  log: Logger;
  /** storage-service's data planes (STORAGE_INTERNAL_URL): signed URLs are proxied and uploads streamed there. */
  storage: StorageReplicas;
  bodyLimit?: number;
  /** Which proxies' X-Forwarded-For to believe for the client address (TRUST_PROXY); none by default. */
  trustProxy?: boolean | string;
  /** A bearer token that may read /metrics besides admins (METRICS_TOKEN). */
  metricsToken?: string;
  /** Browser origins allowed to call the API (CORS_ORIGINS); any by default. */
  corsOrigins?: "*" | string[];
  /** The most time to receive one request whole, body included (REQUEST_TIMEOUT_MS); 0: no limit. */
  requestTimeoutMs?: number;
  /** A connection silent both ways this long is closed (REQUEST_IDLE_TIMEOUT_MS); 0: never. */
  idleTimeoutMs?: number;
  /** Open WebSockets and event streams per user in this process (WS_MAX_CONNECTIONS_PER_USER). */
  maxConnectionsPerUser?: number;
  /** The models catalog, who serves hosted models, and the webhook key; absent: the default catalog, no provider. */
  models?: GatewayModels;
  /** Each user's authenticated requests a minute, by tier (RATE_LIMIT_*_PER_MINUTE); absent: no budget. */
  requestBudget?: RequestBudget;
  /** How long POST /prompts/enhance waits for the language model (PROMPT_ENHANCE_TIMEOUT_MS). */
  promptEnhanceTimeoutMs?: number;
  /** The built dashboard served at /dashboard (DASHBOARD_DIR); absent: apps/dashboard/dist. */
  dashboardDir?: string;
  /** A worker silent this long is gone in GET /workers (WORKER_GONE_AFTER_MS); absent: 30 s. */
  workerGoneAfterMs?: number;
  /** How often a worker over HTTP is put in the registry while it calls (ADR 040). */
  workerHeartbeatMs?: number;
}

/** Response headers a browser client may read: request ids, rate limits, idempotent replays. */
const exposedHeaders = ["x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after", "idempotent-replayed", ...tusExposedHeaders];

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The public HTTP surface: plugins (errors, auth, docs, metrics), then the routes under /api/v1. */
export async function buildApp(deps: GatewayDeps): Promise<FastifyInstance> {
  const requestTimeout = deps.requestTimeoutMs ?? 60 * 60_000;
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    trustProxy: deps.trustProxy ?? false,
    // A slow or stalled body holds a socket: stalled ones go after the idle timeout, trickling ones after
    // the total. Uploads of big files legitimately take long, so the total is generous (see env.ts).
    requestTimeout,
    connectionTimeout: deps.idleTimeoutMs ?? 60_000,
    // Node uses the shorter of the headers and request timeouts as the headers' and the longer as the
    // whole request's, so the headers' (60 s) must not pass a short total. It checks every 30 s by default.
    http: { requestTimeout, headersTimeout: Math.min(60_000, requestTimeout || 60_000), connectionsCheckingInterval: Math.min(30_000, Math.max(250, (requestTimeout || 30_000) / 4)) },
    logController: new LogController({ requestIdLogLabel: "request_id" }),
    // What Node's parser or the router refuses answers in the envelope too.
    clientErrorHandler,
    frameworkErrors,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  await app.register(errorsPlugin);
  await app.register(tracingPlugin);
  await app.register(securityHeadersPlugin);
  await app.register(connectionsPlugin);
  // No credentials: the API takes bearer tokens, never cookies. Preflights are cached for 10 minutes.
  await app.register(cors, { origin: deps.corsOrigins ?? "*", methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], exposedHeaders, maxAge: 600 });
  await app.register(metricsPlugin, {
    token: deps.metricsToken,
    gauges: { cutroom_job_watchers: { help: "WebSocket and SSE clients watching a job", read: () => deps.hub.watchers() } },
  });
  await app.register(openapiPlugin);
  await app.register(jsonBodyPlugin);
  await app.register(formbody);
  await app.register(multipart);
  await app.register(websocket, { options: { handleProtocols: (protocols) => (protocols.has("bearer") ? "bearer" : false) } });
  await app.register(authPlugin, { verifier: deps.verifier, ...(deps.requestBudget ? { budget: deps.requestBudget } : {}) });

  // The worker registry's watch, shared by GET /workers and WS /ws subscribe_workers (ADR 038).
  const workers: WorkerRegistry = watchWorkerRegistry(deps.nc, deps.log, { goneAfterMs: deps.workerGoneAfterMs ?? 30_000 });
  app.addHook("onClose", async () => workers.stop());
  await app.register(healthRoutes, deps);
  await app.register(storageProxy, { storage: deps.storage });
  await app.register(dashboardRoutes, { dir: deps.dashboardDir ?? fileURLToPath(new URL("../../dashboard/dist", import.meta.url)) });
  await app.register(realtimeRoutes, { ...deps, workers, connections: createConnectionLimit(deps.maxConnectionsPerUser ?? 20) });
  await app.register(
    async (api) => {
      await api.register(authRoutes, deps);
      await api.register(fileRoutes, deps);
      await api.register(uploadRoutes, deps);
      await api.register(jobRoutes, deps);
      await api.register(projectRoutes, deps);
      await api.register(pipelineRoutes, deps);
      await api.register(promptRoutes, deps);
      await api.register(billingRoutes, deps);
      await api.register(adminRoutes, deps);
      await api.register(workerApiRoutes, { ...deps, workers, httpWorkers: httpWorkerRecorder(deps.nc, deps.rpc, deps.log, { heartbeatMs: deps.workerHeartbeatMs ?? 5000 }) });
      await api.register(workerRoutes, { workers });
      await api.register(webhookRoutes, { nc: deps.nc, webhookSecret: deps.models?.webhookSecret });
    },
    { prefix: "/api/v1" },
  );
  return app;
}
