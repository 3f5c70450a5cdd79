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
export const Health = z.object({
  status: z.enum(["ok", "degraded"]),
  checks: z.record(z.string(), DependencyCheck),
  services: z.record(z.string(), Check),
});

/** GET /health/live: the process is up and serving. */
export const Liveness = z.object({ status: z.literal("ok") });
/** GET /health/ready: whether this gateway can serve API traffic, and if not, what it lacks. */
export const Readiness = z.object({
  status: z.enum(["ready", "not_ready"]),
  missing: z.array(z.string()).describe("nats and the services that did not answer; empty when ready"),
});
