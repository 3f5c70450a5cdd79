import { startNatsForTest as startTestNats } from "./test-nats.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { createLogger } from "./logger.ts";
import { createRpcClient, serveRpc } from "./rpc.ts";

describe("rpc client", () => {
  let nats: Awaited<ReturnType<typeof startTestNats>>;
  beforeAll(async () => {
    nats = await startTestNats();
  });
  afterAll(async () => nats?.stop());

  it("answers SERVICE_UNAVAILABLE at once when no replica of the service is running", async () => {
    const client = createRpcClient(await nats.connect(), { timeoutMs: 5000 });
    const started = Date.now();
    await expect(client.call("billing", "health", {})).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", status: 503 });
    // Not after the call's 5 s timeout: the broker's no-responders answer ends it.
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("answers SERVICE_UNAVAILABLE after the timeout when a service hangs", async () => {
    const nc = await nats.connect();
    nc.subscribe("svc.billing.*", { callback: () => {} });
    // The request goes out on another connection: the server must know of the subscription first.
    await nc.flush();
    const client = createRpcClient(await nats.connect(), { timeoutMs: 300 });
    await expect(client.call("billing", "health", {})).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", details: { reason: "timeout" } });
  });

  it("gives each of many calls in flight at once its own reply, whatever order they are answered in", async () => {
    const serverNc = await nats.connect();
    const reserve = async (b: { amount: number }) => (await new Promise((r) => setTimeout(r, (b.amount * 7) % 23)), { balance: b.amount });
    const server = serveRpc(serverNc, "billing", { reserve } as never, createLogger("test", "silent"));
    await serverNc.flush();
    const client = createRpcClient(await nats.connect(), { timeoutMs: 5000 });
    const ids = { user_id: "00000000-0000-4000-8000-000000000000", job_id: "00000000-0000-4000-8000-000000000001" };
    const amounts = Array.from({ length: 200 }, (_, i) => i);
    const replies = await Promise.all(amounts.map((amount) => client.call("billing", "reserve", { ...ids, amount })));
    expect(replies.map((r) => r.balance)).toEqual(amounts);
    await server.drain();
  });

  it("fails the calls waiting on a connection that closes at once, as unavailable, not at their timeout", async () => {
    const nc = await nats.connect();
    nc.subscribe("svc.billing.*", { callback: () => {} });
    await nc.flush();
    const callerNc = await nats.connect();
    const call = createRpcClient(callerNc, { timeoutMs: 60_000 }).call("billing", "health", {});
    await callerNc.flush();
    await callerNc.close();
    await expect(call).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", details: { reason: "unreachable" } });
    await expect(createRpcClient(callerNc, { timeoutMs: 60_000 }).call("billing", "health", {})).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", details: { reason: "unreachable" } });
  });
});

describe("rpc server", () => {
  let nats: Awaited<ReturnType<typeof startTestNats>>;
  beforeAll(async () => {
    nats = await startTestNats();
  });
  afterAll(async () => nats?.stop());

  it("answers SERVICE_UNAVAILABLE, not INTERNAL, when the handler's database cannot be reached", async () => {
    // A port nothing listens on: the driver's real connection error.
    const sql = postgres("postgres://postgres@127.0.0.1:1/none", { max: 1, connect_timeout: 2, onnotice: () => {} });
    const serverNc = await nats.connect();
    const server = serveRpc(serverNc, "billing", { health: async () => (await sql`select 1`, { status: "up", service: "billing", checks: {} }) } as never, createLogger("test", "silent"));
    await serverNc.flush();
    const client = createRpcClient(await nats.connect(), { timeoutMs: 5000 });
    await expect(client.call("billing", "health", {})).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", status: 503, message: "billing service cannot reach its database" });
    await server.drain();
    await sql.end();
  });
});

describe("rpc deadlines", () => {
  let nats: Awaited<ReturnType<typeof startTestNats>>;
  beforeAll(async () => {
    nats = await startTestNats();
  });
  afterAll(async () => nats?.stop());

  it("tells the handler when its caller stops waiting, and a call made for a request past its deadline fails at once", async () => {
    const serverNc = await nats.connect();
    const seen: (number | undefined)[] = [];
    const health = async (_b: unknown, ctx: { deadline?: number }) => (seen.push(ctx.deadline), { status: "up", service: "billing", checks: {} });
    serveRpc(serverNc, "billing", { health } as never, createLogger("test", "silent"));
    await serverNc.flush();
    const nc = await nats.connect();

    const sent = Date.now();
    await createRpcClient(nc, { timeoutMs: 1500 }).call("billing", "health", {});
    expect(seen[0]! - sent).toBeGreaterThan(1400);
    expect(seen[0]! - sent).toBeLessThanOrEqual(1600);
    // A call on behalf of a request with 200 ms left waits 200 ms, not its own 5 s, and says so.
    await createRpcClient(nc, { timeoutMs: 5000 }).call("billing", "health", {}, { deadline: Date.now() + 200 });
    expect(seen[1]! - Date.now()).toBeLessThanOrEqual(200);
    await expect(createRpcClient(nc, { timeoutMs: 5000 }).call("billing", "health", {}, { deadline: Date.now() - 1 })).rejects.toMatchObject({
      code: "SERVICE_UNAVAILABLE",
      status: 503,
      details: { service: "billing", reason: "timeout" },
    });
    expect(seen).toHaveLength(2);

    // An older caller's envelope, without timeout_ms, is still served, with no deadline.
    const reply = await nc.request("svc.billing.health", JSON.stringify({ request_id: "old", caller: null, body: {} }), { timeout: 2000 });
    expect(reply.json()).toMatchObject({ ok: true });
    expect(seen[2]).toBeUndefined();
  });
});

describe("instance health", () => {
  let nats: Awaited<ReturnType<typeof startTestNats>>;
  beforeAll(async () => {
    nats = await startTestNats();
  });
  afterAll(async () => nats?.stop());

  it("is answered by every replica, each with its own id and checks, while the queue health has one answer", async () => {
    const log = createLogger("test", "silent");
    const replica = async (status: "up" | "down") => {
      const nc = await nats.connect();
      const server = serveRpc(nc, "billing", { health: async () => ({ status, service: "billing", checks: { database: { status } } }) } as never, log);
      await nc.flush();
      return server;
    };
    const [healthy, sick] = [await replica("up"), await replica("down")];
    const asker = await nats.connect();
    const replies: { ok: boolean; data: Record<string, unknown> }[] = [];
    for await (const msg of await asker.requestMany("svc.billing.health.instances", "{}", { strategy: "timer", maxWait: 300 })) replies.push(msg.json());
    const answers = replies.map((r) => r.data).sort((a, b) => String(a.status).localeCompare(String(b.status)));
    expect(answers).toMatchObject([
      { status: "down", service: "billing", checks: { database: { status: "down" } }, host: expect.any(String), pid: process.pid, load: { in_flight: 0 } },
      { status: "up", service: "billing", checks: { database: { status: "up" } }, host: expect.any(String), pid: process.pid },
    ]);
    expect(answers[0]!.id).toMatch(new RegExp(`^billing-service-.+-${process.pid}-[0-9a-f]{6}$`));
    expect(answers[0]!.id).not.toBe(answers[1]!.id);
    expect(Date.parse(String(answers[0]!.started_at))).toBeLessThanOrEqual(Date.now());

    let queueAnswers = 0;
    for await (const _msg of await asker.requestMany("svc.billing.health", JSON.stringify({ request_id: "r1", caller: null, body: {} }), { strategy: "timer", maxWait: 300 })) queueAnswers++;
    expect(queueAnswers).toBe(1);

    await sick.drain();
    const left: unknown[] = [];
    for await (const msg of await asker.requestMany("svc.billing.health.instances", "{}", { strategy: "timer", maxWait: 300 })) left.push(msg.json());
    expect(left).toMatchObject([{ ok: true, data: { status: "up" } }]);
    await healthy.drain();
  });
});
