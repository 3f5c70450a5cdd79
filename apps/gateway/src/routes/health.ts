import { Health, RpcReply, ServiceHealth, serviceNames, workerNames, type Check } from "@cutroom/contracts";
import { withTimeout, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { randomUUID } from "node:crypto";
import { z } from "zod";

const TIMEOUT_MS = 2000;

/** Asks one service or worker for its health over NATS; a silent one is down. */
async function askHealth(nc: NatsConnection, rpc: RpcClient, name: string): Promise<ServiceHealth | Check> {
  const started = performance.now();
  try {
    if ((serviceNames as readonly string[]).includes(name)) {
      return await withTimeout(rpc.call(name as (typeof serviceNames)[number], "health", {}), TIMEOUT_MS);
    }
    const msg = await nc.request(`svc.${name}.health`, JSON.stringify({ request_id: randomUUID(), caller: null, body: {} }), { timeout: TIMEOUT_MS });
    const reply = RpcReply.parse(msg.json());
    if (!reply.ok) throw new Error(reply.error.message);
    return ServiceHealth.parse(reply.data);
  } catch (err) {
    return { status: "down", latency_ms: Math.round(performance.now() - started), error: (err as Error).message };
  }
}

export async function healthRoutes(base: FastifyInstance, { rpc, nc }: { rpc: RpcClient; nc: NatsConnection }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["health"];

  app.get("/", { schema: { tags, response: { 200: z.object({ name: z.string(), api: z.string(), docs: z.string(), health: z.string() }) } } }, async () => ({
    name: "cutroom",
    api: "/api/v1",
    docs: "/docs",
    health: "/health",
  }));

  app.get("/health", { schema: { tags, description: "Each dependency and service; 503 when any is down.", response: { 200: Health, 503: Health } } }, async (_req, reply) => {
    const names = [...serviceNames, ...workerNames];
    const started = performance.now();
    const natsCheck: Check = await nc
      .rtt()
      .then((ms) => ({ status: "up" as const, latency_ms: Math.round(ms) }))
      .catch((err: Error) => ({ status: "down" as const, error: err.message, latency_ms: Math.round(performance.now() - started) }));
    const answers = await Promise.all(names.map((n) => askHealth(nc, rpc, n)));
    const services: Record<string, Check> = {};
    names.forEach((n, i) => {
      const a = answers[i]!;
      services[n] = "service" in a ? { status: a.status, ...(a.status === "down" ? { error: JSON.stringify(a.checks) } : {}) } : a;
    });
    const byName = Object.fromEntries(names.map((n, i) => [n, answers[i]!]));
    // Dependencies as their owners see them: the database through job-service, storage through storage-service.
    const dependency = (owner: string, check: string): Check => {
      const a = byName[owner];
      if (a && "checks" in a && a.checks[check]) return a.checks[check]!;
      return { status: "down", error: `${owner} did not report ${check}` };
    };
    const checks: Record<string, Check> = { nats: natsCheck, database: dependency("job", "database"), storage: dependency("storage", "storage") };
    // billing reports test_purchases only when free credits are on: shown here so an operator sees it.
    const billing = byName.billing;
    if (billing && "checks" in billing && billing.checks.test_purchases) checks.test_purchases = billing.checks.test_purchases;
    const allUp = [...Object.values(checks), ...Object.values(services)].every((c) => c.status === "up");
    reply.code(allUp ? 200 : 503);
    return { status: allUp ? ("ok" as const) : ("degraded" as const), checks, services };
  });
}
