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
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("answers SERVICE_UNAVAILABLE after the timeout when a service hangs", async () => {
    const nc = await nats.connect();
    nc.subscribe("svc.billing.*", { callback: () => {} });
    // The request goes out on another connection: the server must know of the subscription first.
    await nc.flush();
    const client = createRpcClient(await nats.connect(), { timeoutMs: 300 });
    await expect(client.call("billing", "health", {})).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", details: { reason: "timeout" } });
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
