import { startNatsForTest as startTestNats } from "./test-nats.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "./rpc.ts";

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
