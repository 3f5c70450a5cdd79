import {
  Health,
  InstanceHealth,
  instanceHealthWindowMs,
  Liveness,
  Readiness,
  RpcReply,
  serviceNames,
  subjects,
  jobTypes,
  workerNames,
  workerQueues,
  type Check,
  type JobTypeName,
  type DependencyCheck,
  type Instance,
  type KindHealth,
  type ServiceHealth,
  type ServiceName,
} from "@cutroom/contracts";
import { newInstance, withTimeout, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { noGatewayModels, type GatewayModels } from "../models.ts";
import { publicRoute } from "../plugins/openapi.ts";

const TIMEOUT_MS = 2000;

/** Asks one service for its health (any one instance answers); a silent one is down. */
async function askHealth(rpc: RpcClient, name: ServiceName): Promise<ServiceHealth | Check> {
  const started = performance.now();
  try {
    return await withTimeout(rpc.call(name, "health", {}), TIMEOUT_MS);
  } catch (err) {
    return { status: "down", latency_ms: Math.round(performance.now() - started), error: (err as Error).message };
  }
}

/**
 * Every instance of one service or worker kind: each process answers `svc.<name>.health.instances`
 * (no queue group), and what arrives within the window counts; a process whose checks hang answers
 * in time anyway, as down. With none listening the server says so at once (no responders), so a
 * kind that is down costs no wait.
 */
async function askInstances(nc: NatsConnection, name: string): Promise<InstanceHealth[]> {
  const found: InstanceHealth[] = [];
  try {
    const body = JSON.stringify({ request_id: randomUUID(), caller: null, body: {} });
    for await (const msg of await nc.requestMany(subjects.instanceHealth(name), body, { strategy: "timer", maxWait: instanceHealthWindowMs })) {
      const reply = RpcReply.safeParse(safeJson(msg));
      const health = reply.success && reply.data.ok ? InstanceHealth.safeParse(reply.data.data) : undefined;
      if (health?.success) found.push(health.data);
    }
  } catch {
    // No responders, or NATS is unreachable (the nats check says so): no instance answered.
  }
  return found.sort((a, b) => a.id.localeCompare(b.id));
}

function safeJson(msg: { json: () => unknown }): unknown {
  try {
    return msg.json();
  } catch {
    return undefined;
  }
}

/** A kind is up when every instance that answered is, degraded when only some are, down when none is. */
function kindHealth(instances: InstanceHealth[]): KindHealth {
  const up = instances.filter((i) => i.status === "up").length;
  const status = up === 0 ? "down" : up === instances.length ? "up" : "degraded";
  const sick = instances.filter((i) => i.status !== "up").map((i) => `${i.id}: ${JSON.stringify(i.checks)}`);
  const error = instances.length === 0 ? `no instance answered within ${instanceHealthWindowMs} ms` : sick.join("; ");
  return { status, count: instances.length, instances: instances.map(({ service: _service, ...i }) => i), ...(status === "up" ? {} : { error }) };
}

/** A round trip to the NATS server; bounded, since a reconnecting client would otherwise wait. */
async function checkNats(nc: NatsConnection): Promise<Check> {
  const started = performance.now();
  return withTimeout(nc.rtt(), TIMEOUT_MS)
    .then((ms) => ({ status: "up" as const, latency_ms: Math.round(ms) }))
    .catch((err: Error) => ({ status: "down" as const, error: err.message, latency_ms: Math.round(performance.now() - started) }));
}

const answered = (a: ServiceHealth | Check) => "service" in a;

/**
 * A worker kind's load as its instances that are up report it (svc.<kind>.health.instances): slots
 * in use in percent, jobs held, slots, and how many drain. Admins see it beside the instances.
 */
function workerLoad(instances: InstanceHealth[]): Pick<KindHealth, "load" | "in_flight" | "concurrency" | "draining"> {
  const up = instances.filter((i) => i.status === "up");
  const sum = (key: string) => up.reduce((n, i) => n + (i.load?.[key] ?? 0), 0);
  const concurrency = sum("concurrency");
  const busy = concurrency - sum("free_slots");
  return { load: concurrency > 0 ? Math.min(100, Math.max(0, Math.round((100 * busy) / concurrency))) : 0, in_flight: sum("in_flight"), concurrency, draining: sum("draining") };
}

/** Job types none of whose queue's worker instances is up and taking jobs (not draining): their jobs wait. */
function unservedJobTypes(byKind: Record<string, InstanceHealth[]>): string[] {
  const serving = (kind: string) => (byKind[kind] ?? []).some((i) => i.status === "up" && !i.load?.draining);
  const queues = new Set<string>(workerNames.filter(serving).map((w) => workerQueues[w]));
  return (Object.keys(jobTypes) as JobTypeName[]).filter((t) => !queues.has(jobTypes[t].queue));
}

/**
 * Who serves hosted models. The emulator is asked (any HTTP answer is up); Replicate is not, since
 * the gateway holds no token (workers report its failures on their jobs). Without a provider only
 * local engines run: `unknown`, a configuration rather than an outage, so it does not degrade /health.
 */
async function checkModels(models: GatewayModels): Promise<DependencyCheck> {
  if (models.provider === "replicate") return { status: "up", provider: "replicate" };
  if (models.provider === "none") return { status: "unknown", provider: "none", error: "no model provider: only local engines run (set REPLICATE_API_TOKEN)" };
  if (!models.emulatorUrl) return { status: "unknown", provider: "emulator", error: "MODEL_EMULATOR_URL is not set on the gateway" };
  const started = performance.now();
  try {
    const res = await fetch(models.emulatorUrl, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    await res.body?.cancel();
    return { status: "up", provider: "emulator", latency_ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { status: "down", provider: "emulator", latency_ms: Math.round(performance.now() - started), error: (err as Error).message };
  }
}

/** Which services report each shared dependency: every service with a database checks it. */
const reporters: Record<string, string[]> = { database: ["auth", "billing", "storage", "job"], storage: ["storage"] };

/**
 * A dependency as the instances that use it see it: up when any of them reaches it (one instance's
 * broken pool shows as that instance being down), down when all that answered say so, unknown when
 * none answered (a service being down says nothing about the database).
 */
function dependency(name: string, byKind: Record<string, InstanceHealth[]>): DependencyCheck {
  const seen = reporters[name]!.flatMap((owner) => (byKind[owner] ?? []).flatMap((i) => (i.checks[name] ? [i.checks[name]!] : [])));
  if (seen.length === 0) return { status: "unknown", error: `none of ${reporters[name]!.join(", ")} answered` };
  return seen.find((c) => c.status === "up") ?? seen[0]!;
}

/**
 * Anonymous callers see up, down, latencies and how many processes answered; the reasons (internal
 * error text) and the processes themselves (host names, pids, start times, load) are for admins.
 */
const withoutReason = <C extends { error?: string }>({ error: _error, ...check }: C): Omit<C, "error"> => check;
const bare = <C extends { error?: string }>(all: Record<string, C>) => Object.fromEntries(Object.entries(all).map(([k, c]) => [k, withoutReason(c)]));
const bareKind = ({ status, count }: KindHealth) => ({ status, count });

export async function healthRoutes(
  base: FastifyInstance,
  { rpc, nc, models = noGatewayModels(), instance = newInstance("gateway") }: { rpc: RpcClient; nc: NatsConnection; models?: GatewayModels; instance?: Instance },
) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["health"];

  const Index = z.object({ name: z.string(), api: z.string(), docs: z.string(), health: z.string() });
  app.get("/", { schema: { tags, operationId: "getIndex", summary: "Where the API, its docs and health are", ...publicRoute, response: { 200: Index } } }, async () => ({
    name: "cutroom",
    api: "/api/v1",
    docs: "/docs",
    health: "/health",
  }));

  app.get(
    "/health/live",
    { schema: { tags, operationId: "getLiveness", summary: "Liveness: 200 while the process serves requests", ...publicRoute, response: { 200: Liveness } } },
    async () => ({ status: "ok" as const }),
  );

  // Workers do not count: a gateway whose video workers are down still serves the API, and
  // pulling it from the load balancer would not bring them back.
  app.get(
    "/health/ready",
    {
      schema: {
        tags,
        operationId: "getReadiness",
        summary: "Readiness: 200 when NATS and the auth, job, storage and billing services answer",
        ...publicRoute,
        response: { 200: Readiness, 503: { description: "Not ready: `missing` names what does not answer", content: { "application/json": { schema: Readiness } } } },
      },
    },
    async (_req, reply) => {
      const [nats, ...answers] = await Promise.all([checkNats(nc), ...serviceNames.map((n) => askHealth(rpc, n))]);
      const missing = [...(nats.status === "up" ? [] : ["nats"]), ...serviceNames.filter((_, i) => !answered(answers[i]!))];
      reply.code(missing.length ? 503 : 200);
      return { status: missing.length ? ("not_ready" as const) : ("ready" as const), missing };
    },
  );

  app.get(
    "/health",
    {
      schema: {
        tags,
        operationId: "getHealth",
        summary: "Each dependency, service and worker kind, as an operator reads it",
        description:
          "Each dependency and service; 503 when any is down. A dependency no service could report on is `unknown`. Each service and worker kind counts the instances (processes) that answered within half a second (one whose checks hang answers as down, its check timed out): a kind is `up` when all of them are, `degraded` when only some are (503), `down` when none is. Admins (send an admin's token) also see why something is down, each instance (id, host, pid, start time, load, its checks) and `instance`, the gateway that answered. Load balancers want /health/ready instead.",
        ...publicRoute,
        response: { 200: Health, 503: { description: "Something is down (a worker kind, perhaps)", content: { "application/json": { schema: Health } } } },
      },
    },
    async (req, reply) => {
      const names = [...serviceNames, ...workerNames];
      // One wait for everything: each check has its own timeout, so the slowest bounds the reply.
      const [natsCheck, modelsCheck, answers] = await Promise.all([checkNats(nc), checkModels(models), Promise.all(names.map((n) => askInstances(nc, n)))]);
      const byKind = Object.fromEntries(names.map((n, i) => [n, answers[i]!]));
      const services = Object.fromEntries(names.map((n) => [n, kindHealth(byKind[n]!)]));
      for (const w of workerNames) Object.assign(services[w]!, workerLoad(byKind[w]!));
      const unserved = unservedJobTypes(byKind);
      const checks: Record<string, DependencyCheck> = { nats: natsCheck, database: dependency("database", byKind), storage: dependency("storage", byKind) };
      // billing reports test_purchases only when free credits are on: shown here so an operator sees it.
      const testPurchases = byKind.billing!.find((i) => i.checks.test_purchases)?.checks.test_purchases;
      if (testPurchases) checks.test_purchases = testPurchases;
      const allUp = [...Object.values(checks), ...Object.values(services)].every((c) => c.status === "up") && unserved.length === 0;
      // After the sum: a stack without a provider is a choice, not an outage.
      checks.models = modelsCheck;
      const modelsDown = modelsCheck.status === "down";
      reply.code(allUp && !modelsDown ? 200 : 503);
      const status = allUp && !modelsDown ? ("ok" as const) : ("degraded" as const);
      // A token is optional here: a valid admin's gets the reasons and the instances, anything else the bare statuses and counts.
      if (req.headers.authorization) await app.authenticate(req).catch(() => {});
      if (req.caller?.role === "admin") return { status, checks, services, instance, unserved_job_types: unserved };
      return { status, checks: bare(checks), services: Object.fromEntries(Object.entries(services).map(([k, kind]) => [k, bareKind(kind)])), unserved_job_types: unserved };
    },
  );
}
