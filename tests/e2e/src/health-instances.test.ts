import { spawn, type ChildProcess } from "node:child_process";
import { createServer, connect as connectTcp, type Socket } from "node:net";
import { join } from "node:path";
import { stopChild, waitFor, GiveUp } from "@cutroom/devstack";
import { instanceHealthWindowMs } from "@cutroom/contracts";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { signUpAdmin, useStack, type Stack } from "./stack.ts";

const root = join(import.meta.dirname, "..", "..", "..");
// The services /health/ready waits for, and nothing else: the second billing-service is what counts here.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] });

/** A second billing-service process beside the stack's, with the same database and NATS login, as a replica would run. */
async function startBillingReplica(stack: Stack, databaseUrl = stack.databaseUrl): Promise<ChildProcess> {
  const login = stack.natsLogins!["billing-service"];
  const child = spawn(process.execPath, ["--import", "tsx", "src/server.ts"], {
    cwd: join(root, "apps", "billing-service"),
    env: { ...process.env, DATABASE_URL: databaseUrl, NATS_URL: stack.natsUrl, NATS_USER: login.user, NATS_PASSWORD: login.password, LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  let ready = false;
  let exited = false;
  child.on("message", (m) => void ((m as { type?: string })?.type === "ready" && (ready = true)));
  child.once("exit", () => (exited = true));
  await waitFor("the second billing-service to be ready", async () => {
    if (exited) throw new GiveUp("the second billing-service exited during start");
    return ready;
  }, 60_000, 50);
  return child;
}

/**
 * A TCP relay in front of Postgres that can go silent: after `hang()` it keeps every connection open
 * and passes nothing either way, as a database behind a dead network path does.
 */
async function startHangingRelay(databaseUrl: string) {
  const target = new URL(databaseUrl);
  let hung = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connectTcp(Number(target.port || 5432), target.hostname);
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on("data", (chunk) => void (hung || to.write(chunk)));
      from.on("error", () => {});
      from.on("close", () => (sockets.delete(from), to.destroy()));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.toString(),
    hang: () => void (hung = true),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("/health with replicas", () => {
  const children: ChildProcess[] = [];
  afterAll(async () => void (await Promise.allSettled(children.map((c) => stopChild(c)))));
  let adminToken: string;
  const asAdmin = async () => (adminToken ??= (await signUpAdmin(ctx)).token);

  it("lists each instance of a kind with its count to admins, and one fewer after one dies, the kind still up", async () => {
    const one = await ctx.api.request("GET", "/health", { token: await asAdmin() });
    expect(one.body.services.billing).toMatchObject({ status: "up", count: 1 });
    const [first] = one.body.services.billing.instances;
    expect(first).toMatchObject({ status: "up", id: expect.stringMatching(/^billing-service-/), host: expect.any(String), pid: expect.any(Number), started_at: expect.any(String), checks: { database: { status: "up" } } });
    expect(one.body.instance.id).toMatch(/^gateway-/);

    const replica = await startBillingReplica(ctx.stack);
    children.push(replica);
    const two = await ctx.api.request("GET", "/health", { token: await asAdmin() });
    expect(two.body.services.billing).toMatchObject({ status: "up", count: 2 });
    const instances = two.body.services.billing.instances as { id: string; pid: number; status: string }[];
    expect(instances.map((i) => i.status)).toEqual(["up", "up"]);
    expect(new Set(instances.map((i) => i.id)).size).toBe(2);
    expect(instances.map((i) => i.pid)).toEqual(expect.arrayContaining([first.pid, replica.pid]));
    expect(two.body.services.auth).toMatchObject({ status: "up", count: 1 });

    // Killed, not stopped: it says goodbye to no one.
    replica.kill("SIGKILL");
    await new Promise((resolve) => replica.once("exit", resolve));
    const after = await ctx.api.request("GET", "/health", { token: await asAdmin() });
    expect(after.body.services.billing).toMatchObject({ status: "up", count: 1, instances: [{ id: first.id, status: "up" }] });
    expect(await ctx.api.request("GET", "/health/ready")).toMatchObject({ status: 200, body: { status: "ready", missing: [] } });
  });

  it("says degraded (503) when one of two instances is sick, naming it, with the reason for admins only", async () => {
    // A stand-in for a billing-service whose database pool broke, on billing-service's own NATS login.
    const nc = await connect(ctx.stack.natsOptions("billing-service"));
    try {
      const sick = { id: "billing-service-elsewhere-7-abcdef", host: "elsewhere", pid: 7, started_at: new Date().toISOString() };
      nc.subscribe("svc.billing.health.instances", {
        callback: (_err, msg) => void msg.respond(JSON.stringify({ ok: true, data: { status: "down", service: "billing", checks: { database: { status: "down", error: "connection refused" } }, ...sick } })),
      });
      await nc.flush();
      const anonymous = await ctx.api.request("GET", "/health");
      expect(anonymous.status).toBe(503);
      expect(anonymous.body.services.billing).toEqual({ status: "degraded", count: 2 });
      expect(anonymous.body.checks.database.status).toBe("up"); // the other instances reach it
      const forAdmin = await ctx.api.request("GET", "/health", { token: await asAdmin() });
      expect(forAdmin.body.services.billing).toMatchObject({ status: "degraded", count: 2 });
      expect(forAdmin.body.services.billing.error).toContain(sick.id);
      expect(forAdmin.body.services.billing.instances).toEqual(expect.arrayContaining([expect.objectContaining({ id: sick.id, checks: { database: { status: "down", error: "connection refused" } } })]));
    } finally {
      await nc.close();
    }
    expect((await ctx.api.request("GET", "/health")).body.services.billing).toMatchObject({ status: "up", count: 1 });
  });

  it("says down, with no instances, for a kind none of whose processes runs", async () => {
    const res = await ctx.api.request("GET", "/health");
    expect(res.status).toBe(503);
    expect(res.body.services["worker-audio"]).toEqual({ status: "down", count: 0 });
    const forAdmin = await ctx.api.request("GET", "/health", { token: await asAdmin() });
    expect(forAdmin.body.services["worker-audio"]).toMatchObject({ status: "down", count: 0, instances: [], error: expect.stringMatching(/no instance answered/) });
  });

  it("shows anonymous callers and plain users each kind's status and count, but no process's id, host, pid, start time or load", async () => {
    const user = await ctx.api.signUp();
    for (const token of [undefined, user.token]) {
      const res = await ctx.api.request("GET", "/health", token ? { token } : {});
      expect(res.body.services.billing).toEqual({ status: "up", count: 1 });
      expect(res.body.services.auth).toEqual({ status: "up", count: 1 });
      expect(res.body).not.toHaveProperty("instance");
      expect(JSON.stringify(res.body)).not.toMatch(/"(instances|id|host|pid|started_at|load)"/);
    }
    const forAdmin = await ctx.api.request("GET", "/health", { token: await asAdmin() });
    expect(forAdmin.body.instance).toMatchObject({ id: expect.stringMatching(/^gateway-/), host: expect.any(String), pid: expect.any(Number) });
    expect(forAdmin.body.services.billing.instances[0]).toMatchObject({ host: expect.any(String), pid: expect.any(Number), started_at: expect.any(String), load: expect.any(Object) });
  });

  it("names an instance whose database hangs as down, its check timed out, the kind degraded, within a second", async () => {
    const relay = await startHangingRelay(ctx.stack.databaseUrl);
    const replica = await startBillingReplica(ctx.stack, relay.url);
    try {
      const before = await ctx.api.request("GET", "/health", { token: await asAdmin() });
      expect(before.body.services.billing).toMatchObject({ status: "up", count: 2 });

      relay.hang();
      const started = performance.now();
      const res = await ctx.api.request("GET", "/health", { token: await asAdmin() });
      // /health answers once its collection window closes; the rest is slack for a busy test machine.
      expect(performance.now() - started).toBeLessThan(instanceHealthWindowMs + 700);
      expect(res.status).toBe(503);
      expect(res.body.services.billing).toMatchObject({ status: "degraded", count: 2 });
      const hung = res.body.services.billing.instances.find((i: { pid: number }) => i.pid === replica.pid);
      expect(hung).toMatchObject({ status: "down", checks: { database: { status: "down", error: expect.stringMatching(/timed out/) } } });
      expect(res.body.checks.database.status).toBe("up"); // the stack's own billing-service and auth reach it

      expect((await ctx.api.request("GET", "/health")).body.services.billing).toEqual({ status: "degraded", count: 2 });
    } finally {
      replica.kill("SIGKILL");
      await new Promise((resolve) => (replica.exitCode === null && replica.signalCode === null ? replica.once("exit", resolve) : resolve(undefined)));
      await relay.close();
    }
  });
});
