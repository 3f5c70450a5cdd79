import { z } from "zod";

export const CheckStatus = z.enum(["up", "down"]);
export const Check = z.object({ status: CheckStatus, latency_ms: z.number().optional(), error: z.string().optional() });
export type Check = z.infer<typeof Check>;
export const ServiceHealth = z.object({ status: CheckStatus, service: z.string(), checks: z.record(z.string(), Check) });
export type ServiceHealth = z.infer<typeof ServiceHealth>;
export const Health = z.object({
  status: z.enum(["ok", "degraded"]),
  checks: z.record(z.string(), Check),
  services: z.record(z.string(), Check),
});
