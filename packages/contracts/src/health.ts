import { z } from "zod";

export const CheckStatus = z.enum(["up", "down"]);
export const Check = z.object({ status: CheckStatus, latency_ms: z.number().optional(), error: z.string().optional() });
export type Check = z.infer<typeof Check>;
export const ServiceHealth = z.object({ status: CheckStatus, service: z.string(), checks: z.record(z.string(), Check) });
export type ServiceHealth = z.infer<typeof ServiceHealth>;
/** A shared dependency (database, storage) as the services that use it report it: unknown when none of them answered. */
export const DependencyCheck = Check.extend({
  status: z.enum(["up", "down", "unknown"]),
  provider: z.enum(["replicate", "emulator", "none"]).optional().describe("models: who serves hosted models (emulator: synthetic outputs; none: only local engines)"),
});
export type DependencyCheck = z.infer<typeof DependencyCheck>;

/** How long GET /health collects the answers to `svc.<name>.health.instances`: every process's answer must come within it. */
export const instanceHealthWindowMs = 1000;
/**
 * How long one health check may take before it counts as down ("timed out after … ms"): well inside
 * the window, so an instance whose database hangs is listed as down instead of missing from the list;
 * not so short that a busy machine (a GC pause, a NATS election) reads as an outage.
 */
export const healthCheckTimeoutMs = 700;

/** Which process answers: `<app>-<host>-<pid>-<random>`, so two replicas on one host (or a restarted one) differ. */
export const Instance = z.object({
  id: z.string(),
  host: z.string(),
  pid: z.number().int(),
  started_at: z.string().describe("when the process started (ISO 8601)"),
  version: z.string().optional(),
});
export type Instance = z.infer<typeof Instance>;
/** One process's own health, as every process answers `svc.<name>.health.instances` (no queue group). */
export const InstanceHealth = ServiceHealth.extend(Instance.shape).extend({
  load: z.record(z.string(), z.number()).optional().describe("what the process is doing now, when it says (a worker: concurrency, in_flight)"),
});
export type InstanceHealth = z.infer<typeof InstanceHealth>;
/**
 * A service or worker kind on GET /health: up when every instance that answered is, degraded when
 * some are up and some not, down when none is up (or none answered). The instances are for admins:
 * they name hosts and pids.
 */
export const KindHealth = Check.extend({
  status: z.enum(["up", "degraded", "down"]),
  count: z.number().int().describe("instances that answered"),
  instances: z.array(InstanceHealth.omit({ service: true })).optional().describe("each instance that answered (admins only)"),
  load: z.number().int().min(0).max(100).optional().describe("a worker kind: working slots in use across its instances that are up, in percent (admins only)"),
  in_flight: z.number().int().optional().describe("a worker kind: jobs its instances hold (admins only)"),
  concurrency: z.number().int().optional().describe("a worker kind: working slots across its instances that are up (admins only)"),
  draining: z.number().int().optional().describe("a worker kind: its instances that take no new jobs (admins only)"),
});
export type KindHealth = z.infer<typeof KindHealth>;
export const Health = z.object({
  status: z.enum(["ok", "degraded"]),
  checks: z.record(z.string(), DependencyCheck),
  services: z.record(z.string(), KindHealth),
  instance: Instance.optional().describe("the gateway that answered (admins only)"),
  unserved_job_types: z.array(z.string()).describe("job types whose queue has no worker instance up and not draining: their jobs wait (the reply is 503)"),
});

/** GET /health/live: the process is up and serving. */
export const Liveness = z.object({ status: z.literal("ok") });
/** GET /health/ready: whether this gateway can serve API traffic, and if not, what it lacks. */
export const Readiness = z.object({
  status: z.enum(["ready", "not_ready"]),
  missing: z.array(z.string()).describe("nats and the services that did not answer; empty when ready"),
});
