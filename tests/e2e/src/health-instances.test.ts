import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { stopChild, waitFor, GiveUp } from "@cutroom/devstack";
import { connect } from "@nats-io/transport-node";
import { afterAll, describe, expect, it } from "vitest";
import { signUpAdmin, useStack, type Stack } from "./stack.ts";

const root = join(import.meta.dirname, "..", "..", "..");
// The services /health/ready waits for, and nothing else: the second billing-service is what counts here.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] });

/** A second billing-service process beside the stack's, with the same database and NATS login, as a replica would run. */
async function startBillingReplica(stack: Stack): Promise<ChildProcess> {
  const login = stack.natsLogins!["billing-service"];
  const child = spawn(process.execPath, ["--import", "tsx", "src/server.ts"], {
    cwd: join(root, "apps", "billing-service"),
    env: { ...process.env, DATABASE_URL: stack.databaseUrl, NATS_URL: stack.natsUrl, NATS_USER: login.user, NATS_PASSWORD: login.password, LOG_LEVEL: "warn" },
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

describe("/health with replicas", () => {
  const children: ChildProcess[] = [];
  afterAll(async () => void (await Promise.allSettled(children.map((c) => stopChild(c)))));

  it("lists each instance of a kind with its count, and one fewer after one dies, the kind still up", async () => {
    const one = await ctx.api.request("GET", "/health");
    expect(one.body.services.billing).toMatchObject({ status: "up", count: 1 });
    const [first] = one.body.services.billing.instances;
    expect(first).toMatchObject({ status: "up", id: expect.stringMatching(/^billing-service-/), host: expect.any(String), pid: expect.any(Number), started_at: expect.any(String), checks: { database: { status: "up" } } });
    expect(one.body.instance.id).toMatch(/^gateway-/);

    const replica = await startBillingReplica(ctx.stack);
    children.push(replica);
    const two = await ctx.api.request("GET", "/health");
    expect(two.body.services.billing).toMatchObject({ status: "up", count: 2 });
    const instances = two.body.services.billing.instances as { id: string; pid: number; status: string }[];
    expect(instances.map((i) => i.status)).toEqual(["up", "up"]);
    expect(new Set(instances.map((i) => i.id)).size).toBe(2);
    expect(instances.map((i) => i.pid)).toEqual(expect.arrayContaining([first.pid, replica.pid]));
    expect(two.body.services.auth).toMatchObject({ status: "up", count: 1 });

    // Killed, not stopped: it says goodbye to no one.
    replica.kill("SIGKILL");
    await new Promise((resolve) => replica.once("exit", resolve));
    const after = await ctx.api.request("GET", "/health");
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
      expect(anonymous.body.services.billing).toMatchObject({ status: "degraded", count: 2 });
      expect(anonymous.body.services.billing.instances).toEqual(expect.arrayContaining([{ ...sick, status: "down", checks: { database: { status: "down" } } }]));
      expect(anonymous.body.checks.database.status).toBe("up"); // the other instances reach it
      const admin = await signUpAdmin(ctx);
      const forAdmin = await ctx.api.request("GET", "/health", { token: admin.token });
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
    expect(res.body.services["worker-audio"]).toEqual({ status: "down", count: 0, instances: [] });
  });
});
