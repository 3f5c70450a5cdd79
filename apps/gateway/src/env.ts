import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ModelProviderName } from "@cutroom/models";
import { BaseEnv, envOrigins, loadEnv, urlList } from "@cutroom/runtime";

export const Env = BaseEnv.extend({
  /** Where the public HTTP API listens. */
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  /** Interface to bind: localhost only by default; 0.0.0.0 serves other machines (containers set it). */
  HOST: z.string().default("127.0.0.1"),
  /** storage-service's HTTP data plane, proxied at /storage/* for fs-driver signed URLs and streamed uploads; replicas comma-separated (one refusing the connection or not taking it in time is passed over for the next). */
  STORAGE_INTERNAL_URL: z.string().default("http://127.0.0.1:8001").transform(urlList),
  /** How long connecting to one storage replica may take, in ms, before the next one is tried (or 503 when none is left). */
  STORAGE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).default(2000),
  /** Largest JSON body accepted, in bytes. */
  BODY_LIMIT_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** The most time to receive one request whole, body included, in ms (then 408 and the connection closes); generous, since a 500 MB upload over a slow link takes long. 0 turns it off. */
  REQUEST_TIMEOUT_MS: z.coerce.number().int().min(0).default(60 * 60_000),
  /** A connection that sends nothing and is sent nothing for this long, in ms, is closed: a stalled request body, above all. WebSockets and event streams send every 20 s or less. 0 turns it off. */
  REQUEST_IDLE_TIMEOUT_MS: z.coerce.number().int().min(0).default(60_000),
  /** Open WebSockets (/ws, /ws/jobs/{id}) and event streams (SSE) per user on one gateway process; the next one is refused (close code 1008, or 429). */
  WS_MAX_CONNECTIONS_PER_USER: z.coerce.number().int().positive().default(20),
  /** Authenticated requests a free user may make a minute on one gateway process (job creation has its own limit); 0 turns it off. */
  RATE_LIMIT_FREE_PER_MINUTE: z.coerce.number().int().min(0).default(600),
  /** The same for a pro user. */
  RATE_LIMIT_PRO_PER_MINUTE: z.coerce.number().int().min(0).default(1200),
  /** The same for an enterprise user. */
  RATE_LIMIT_ENTERPRISE_PER_MINUTE: z.coerce.number().int().min(0).default(3000),
  /** Browser origins allowed by CORS: * (any; the API takes bearer tokens, not cookies) or a comma-separated list of origins. */
  CORS_ORIGINS: envOrigins("*"),
  /** Whose X-Forwarded-For gives the client address (sign-in throttles): false, true (any sender: only behind a proxy that overwrites it), or proxy addresses/CIDRs, comma-separated. */
  TRUST_PROXY: z
    .string()
    .trim()
    .default("false")
    .transform((v): boolean | string => (v === "false" || v === "" ? false : v === "true" ? true : v)),
  /** A bearer token a scraper may send to read /metrics on the API port (admins' access tokens work too). */
  METRICS_TOKEN: z.string().min(16).optional(),
  /** Which provider the workers run hosted models with (replicate, emulator, none), shown by /health and GET /job-types; npm start sets it. Unset: decided from REPLICATE_API_TOKEN and MODEL_EMULATOR_URL. */
  MODEL_PROVIDER: ModelProviderName.optional(),
  /** Set when the workers use Replicate; the gateway only looks whether it is set. */
  REPLICATE_API_TOKEN: z.string().optional(),
  /** The model emulator, when the workers use it: /health asks whether it answers. */
  MODEL_EMULATOR_URL: z.url().optional(),
  /** Key of Replicate's webhook signatures (`whsec_…`, from Replicate's GET /v1/webhooks/default/secret); unset, POST /api/v1/webhooks/replicate answers 404. */
  REPLICATE_WEBHOOK_SECRET: z.string().min(1).optional(),
  /** The operator's models catalog, the file the workers read: GET /job-types lists its levels and prices. */
  MODEL_CATALOG_FILE: z.string().min(1).optional(),
  /** The built web dashboard served at /dashboard (default: apps/dashboard/dist of this checkout, which npm start builds). */
  DASHBOARD_DIR: z.string().min(1).default(fileURLToPath(new URL("../../dashboard/dist", import.meta.url))),
  /** A worker instance with no heartbeat for this long, in ms, is gone in GET /api/v1/workers (listed for an hour after); two missed heartbeats already read as unhealthy. */
  WORKER_GONE_AFTER_MS: z.coerce.number().int().min(500).default(30_000),
  /** How often, in ms, the gateway puts a worker over HTTP in the registry while it calls (at most once per interval); one silent two intervals reads as unhealthy. */
  WORKER_HEARTBEAT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  /** How long the gateway's start waits, in ms, to follow the job events stream (job-service creates it) before it listens anyway; watchers of a job then get its live events once the stream is there. */
  JOB_EVENTS_WAIT_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  /** How long POST /api/v1/prompts/enhance waits for the language model, in ms (then 502 PROVIDER_ERROR; the worker cancels the prediction). */
  PROMPT_ENHANCE_TIMEOUT_MS: z.coerce.number().int().min(2000).max(600_000).default(60_000),
});
export type Env = z.output<typeof Env>;
export const readEnv = () => loadEnv(Env);
