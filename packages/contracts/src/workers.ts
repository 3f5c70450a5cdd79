import { z } from "zod";
import { workerNames } from "./subjects.ts";

/** The NATS KV bucket every worker process puts its heartbeat in, keyed by its id (docs/adr/038-worker-registry.md). */
export const workerRegistryBucket = "workers";
/**
 * The bucket's max_age: an entry outlives its last heartbeat this long, so an instance that died is
 * listed as gone for an hour, then forgotten. nats-server 2.9 has no per-key TTL: the bucket's it is.
 */
export const workerRegistryKeepMs = 60 * 60_000;

/** Where one worker instance hears drain and resume: a subject of its own, so the request reaches that process only. */
export const workerControlSubject = (kind: string, id: string) => `workers.control.${kind}.${id}`;

/** A worker instance's id as a subject token and KV key: its instance id with anything but letters, digits, - and _ replaced. */
export const workerRegistryId = (instanceId: string) => instanceId.replace(/[^A-Za-z0-9_-]/g, "_");
/** The registry keys of workers over HTTP (kind http, put by the gateway): `http.` and a workerRegistryId. */
export const httpWorkerKeyPrefix = "http.";

/** A NATS worker's app name, or http: an external worker over the worker API (ADR 040), recorded by the gateway on its calls. */
export const WorkerKind = z.enum([...workerNames, "http"]);
export type WorkerKind = z.infer<typeof WorkerKind>;

export const WorkerState = z.enum(["running", "draining", "stopped"]);
export type WorkerState = z.infer<typeof WorkerState>;

/** What a worker puts in the registry each heartbeat: who it is, what it takes, how loaded it is. */
export const WorkerHeartbeat = z.object({
  id: z.string(),
  kind: WorkerKind,
  queue: z.string(),
  job_types: z.array(z.string()),
  concurrency: z.number().int(),
  version: z.string(),
  host: z.string(),
  pid: z.number().int(),
  started_at: z.string(),
  /** How often it puts: a reader counts missed heartbeats against it. */
  heartbeat_ms: z.number().int(),
  /** running; draining (takes no new jobs); stopped (shut down cleanly: gone at once). */
  state: WorkerState,
  /** False while its pulls from JetStream fail: it cannot take jobs, so it is unhealthy. */
  pulling: z.boolean(),
  in_flight: z.number().int(),
  free_slots: z.number().int(),
  /** The last jobs' durations in ms, newest last (a few dozen at most). */
  recent_durations_ms: z.array(z.number()),
  jobs_done_last_hour: z.number().int(),
  jobs_failed_last_hour: z.number().int(),
  sent_at: z.string(),
});
export type WorkerHeartbeat = z.infer<typeof WorkerHeartbeat>;

export const WorkerStatus = z.enum(["healthy", "unhealthy", "draining", "gone"]);
export type WorkerStatus = z.infer<typeof WorkerStatus>;

/** One worker instance as GET /api/v1/workers lists it. */
export const WorkerInstance = z.object({
  id: z.string(),
  kind: WorkerKind,
  queue: z.string(),
  status: WorkerStatus.describe(
    "healthy; unhealthy (two heartbeats missed, or its pulls from JetStream failing); draining (takes no new jobs, finishes its own); gone (no heartbeat for longer than the gateway's WORKER_GONE_AFTER_MS, or stopped; listed for an hour)",
  ),
  load: z.number().int().min(0).max(100).describe("its working slots in use, in percent"),
  in_flight: z.number().int().describe("jobs in hand: working, or uploading and reporting their results"),
  free_slots: z.number().int(),
  concurrency: z.number().int(),
  last_seen: z.string().describe("its last heartbeat (ISO 8601)"),
  version: z.string(),
  host: z.string(),
  pid: z.number().int(),
  started_at: z.string(),
  job_types: z.array(z.string()),
  jobs_done_last_hour: z.number().int().describe("jobs it ended in the last hour (succeeded or failed), as it counts them"),
  jobs_failed_last_hour: z.number().int(),
  average_duration_ms: z.number().nullable().describe("over its last jobs; null before its first"),
});
export type WorkerInstance = z.infer<typeof WorkerInstance>;

export const WorkersReply = z.object({
  workers: z.array(WorkerInstance),
  job_types: z
    .record(z.string(), z.object({ queue: z.string(), healthy_instances: z.number().int() }))
    .describe("every job type: its queue and how many healthy instances (not draining) take it"),
});
export type WorkersReply = z.infer<typeof WorkersReply>;

/** POST /workers/{id}/drain and /resume, as sent to the instance's control subject. */
export const WorkerControlBody = z.object({ action: z.enum(["drain", "resume"]) });
export type WorkerControlBody = z.infer<typeof WorkerControlBody>;

/** Sent on WS /ws to admins who sent subscribe_workers, whenever an instance's status, load or jobs in hand change. */
export const WorkerHealthUpdate = z.object({
  type: z.literal("worker_health"),
  worker_id: z.string(),
  kind: WorkerKind,
  status: WorkerStatus,
  load: z.number().int().min(0).max(100),
  active_jobs: z.number().int(),
});
export type WorkerHealthUpdate = z.infer<typeof WorkerHealthUpdate>;

/** A heartbeat as the registry's readers judge it at `now`: status and load are worked out here, once, for every reader. */
export function workerInstance(hb: WorkerHeartbeat, now: number, goneAfterMs: number): WorkerInstance {
  const age = now - Date.parse(hb.sent_at);
  const status: WorkerStatus =
    hb.state === "stopped" || age > goneAfterMs ? "gone" : age > 2 * hb.heartbeat_ms + 500 || !hb.pulling ? "unhealthy" : hb.state === "draining" ? "draining" : "healthy";
  const busy = Math.max(0, hb.concurrency - hb.free_slots);
  const durations = hb.recent_durations_ms;
  return {
    id: hb.id,
    kind: hb.kind,
    queue: hb.queue,
    status,
    load: hb.concurrency > 0 ? Math.min(100, Math.round((100 * busy) / hb.concurrency)) : 0,
    in_flight: hb.in_flight,
    free_slots: hb.free_slots,
    concurrency: hb.concurrency,
    last_seen: hb.sent_at,
    version: hb.version,
    host: hb.host,
    pid: hb.pid,
    started_at: hb.started_at,
    job_types: hb.job_types,
    jobs_done_last_hour: hb.jobs_done_last_hour,
    jobs_failed_last_hour: hb.jobs_failed_last_hour,
    average_duration_ms: durations.length ? Math.round(durations.reduce((a, b) => a + b, 0) / durations.length) : null,
  };
}
