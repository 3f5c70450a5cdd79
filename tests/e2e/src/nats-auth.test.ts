import { randomUUID } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { useStack } from "./stack.ts";

// Everything a worker needs (job-service to claim against, a worker holding its consumer), and the gateway to check balances.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"] });

const opened: NatsConnection[] = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((nc) => nc.close()));
});
async function connectAs(options: Parameters<typeof connect>[0]) {
  const nc = await connect({ ...options, maxReconnectAttempts: 0 });
  opened.push(nc);
  return nc;
}

/** An RPC request as the gateway would send it, claiming to come from `caller`. */
const envelope = (body: unknown, caller: unknown = null) => JSON.stringify({ request_id: randomUUID(), caller, body });

describe("NATS on a started stack", () => {
  it("refuses a connection without a user or with a wrong password", async () => {
    await expect(connectAs({ servers: ctx.stack.natsUrl })).rejects.toThrow(/authorization violation/i);
    const worker = ctx.stack.natsOptions("worker-image");
    await expect(connectAs({ ...worker, pass: "not-the-password" })).rejects.toThrow(/authorization violation/i);
  });

  it("lets a worker's user claim and finish jobs, but not grant credits, serve billing or read others' replies", async () => {
    const user = await ctx.api.signUp();
    const nc = await connectAs(ctx.stack.natsOptions("worker-image"));

    // Its own subjects work: job-service answers (the job does not exist, but the call got through).
    for (const method of ["claim", "finish"]) {
      const body = method === "claim" ? { job_id: randomUUID(), dispatch: 1, worker: "intruder" } : { job_id: randomUUID(), dispatch: 1, outcome: { status: "failed", error: { code: "x", message: "x" } } };
      const reply = (await nc.request(`svc.job.${method}`, envelope(body), { timeout: 5000 })).json<{ ok: boolean }>();
      expect(reply, method).toHaveProperty("ok");
    }
    const consumer = await (await jetstreamManager(nc)).consumers.info("JOBS", "worker-image");
    expect(consumer.name).toBe("worker-image");

    // A grant "from an admin" is refused by the broker itself, and the balance stays as it was.
    const caller = { user_id: user.user_id, role: "admin", tier: "free" };
    await expect(nc.request("svc.billing.grant", envelope({ user_id: user.user_id, amount: 1000 }, caller), { timeout: 5000 })).rejects.toThrow(/permissions violation/i);
    expect((await ctx.api.get("/billing/credits", user.token)).body).toMatchObject({ credits: 100 });

    // Nor can it stand in for billing, listen to every job's events or read the gateway's replies (tokens travel there).
    for (const subject of ["svc.billing.*", "jobs.events.>", "_INBOX_gateway.>", "_INBOX.>"]) {
      const sub = nc.subscribe(subject);
      expect(String(await sub.closed), subject).toMatch(/permissions violation/i);
    }
    // Nor change the streams job-service owns.
    const jsm = await jetstreamManager(nc);
    await expect(jsm.streams.purge("JOBS")).rejects.toThrow(/permissions violation/i);
    await expect(jsm.consumers.delete("JOBS", "worker-image")).rejects.toThrow(/permissions violation/i);
  });

  it("keeps the gateway's user away from the worker-facing methods", async () => {
    const nc = await connectAs(ctx.stack.natsOptions("gateway"));
    const finish = { job_id: randomUUID(), dispatch: 1, outcome: { status: "succeeded", result: {} } };
    await expect(nc.request("svc.job.finish", envelope(finish), { timeout: 5000 })).rejects.toThrow(/permissions violation/i);
    await expect(nc.request("svc.billing.capture", envelope({ job_id: randomUUID() }), { timeout: 5000 })).rejects.toThrow(/permissions violation/i);
  });
});
