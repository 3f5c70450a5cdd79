import { readFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { BaseEnv, loadEnv, urlList } from "@cutroom/runtime";
import { z } from "zod";

const packageVersion = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

export const WorkerEnv = BaseEnv.extend({
  /** How often this process puts its heartbeat (load, jobs in hand, counts) in the worker registry, in ms: one put each, whatever the jobs; two missed read as unhealthy. */
  WORKER_HEARTBEAT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
  /** The version this instance reports in GET /api/v1/workers (a deploy sets its release); default: the worker runtime's package version. */
  WORKER_VERSION: z.string().min(1).default(packageVersion),
  /** Jobs this process works on at once; a job that is uploading its outputs or reporting its end gives its slot to the next, so it holds at most four times this many JetStream messages unacked. */
  WORKER_CONCURRENCY: z.coerce.number().int().positive().default(availableParallelism()),
  /** How long JetStream waits for an ack before redelivering; a running job heartbeats every third of it. */
  JOB_ACK_WAIT_MS: z.coerce.number().int().min(1000).default(30_000),
  /** Attempts at one dispatch of a job before it fails for good; a delivery past it (the attempts' workers died unsettled) fails it as WORKER_LOST without running it. */
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  /** Delay before the first retry of a transiently failed job; each next one is 4× longer, at most 30 s. */
  JOB_RETRY_BASE_MS: z.coerce.number().int().min(100).max(30_000).default(1000),
  /** How long a job's stage and progress events wait before they are published, in ms: one replaced meanwhile (a stage that ended, newer progress) is never sent, and a job that succeeds before any went out publishes none, so a job of a few milliseconds costs no events but its result. 0: each at once. */
  JOB_EVENT_DELAY_MS: z.coerce.number().int().min(0).max(5000).default(200),
  /** storage-service's data planes, where signed input and output URLs point (never at a gateway); replicas comma-separated, the same list storage-service has: one refusing the connection or not taking it in time is passed over for the next. */
  STORAGE_INTERNAL_URL: z.string().default("http://127.0.0.1:8001").transform(urlList),
  /** How long connecting to one storage replica may take, in ms, before the next one is tried. */
  STORAGE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).default(2000),
  /** Where each job gets its own scratch directory, removed when the job ends. */
  WORKER_TMP_DIR: z.string().min(1).default(tmpdir()),
  /** Token for the Replicate model API; set, Replicate runs the hosted models. Only this worker process holds it. */
  REPLICATE_API_TOKEN: z.string().optional(),
  /** Replicate API base URL: point it at a proxy or a compatible server. */
  REPLICATE_BASE_URL: z.url().default("https://api.replicate.com/v1"),
  /** The model emulator (apps/model-emulator), used when REPLICATE_API_TOKEN is unset: its outputs are synthetic. npm start sets it; unset and no token, only local engines run. */
  MODEL_EMULATOR_URL: z.url().optional(),
  /** An operator's models catalog (JSON), merged entry by entry over packages/models/catalog.json. */
  MODEL_CATALOG_FILE: z.string().min(1).optional(),
  /** The gateway's public /api/v1/webhooks/replicate URL, reachable by the provider: set, predictions ask for webhooks and polling becomes a slow fallback. */
  MODEL_WEBHOOK_URL: z.url().optional(),
  /** How often a running prediction is polled when no webhook wakes the worker, in ms. */
  MODEL_POLL_INTERVAL_MS: z.coerce.number().int().min(100).default(1000),
  /** Hosts model outputs may be downloaded from besides the provider API's own (comma-separated; `*.domain` for subdomains): Replicate serves them from replicate.delivery. */
  MODEL_OUTPUT_HOSTS: z
    .string()
    .default("replicate.delivery,*.replicate.delivery")
    .transform((v) => v.split(",").map((h) => h.trim()).filter(Boolean)),
  /** Largest model output file accepted from a provider, in bytes. */
  MODEL_OUTPUT_MAX_BYTES: z.coerce.number().int().positive().default(1024 * 1024 * 1024),
});
export type WorkerEnv = z.output<typeof WorkerEnv>;

export const readWorkerEnv = () => loadEnv(WorkerEnv);
