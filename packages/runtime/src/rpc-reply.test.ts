import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRpcClient } from "./rpc.ts";
import { startNatsForTest } from "./test-nats.ts";

// A service that breaks the contract (a bug, or another version mid-deploy), answering on raw NATS.
describe("rpc client facing a reply that breaks the contract", () => {
  let nats: Awaited<ReturnType<typeof startNatsForTest>>;
  beforeAll(async () => {
    nats = await startNatsForTest();
    const nc = await nats.connect();
    const replies: Record<string, string> = {
      "svc.billing.balance": JSON.stringify({ ok: true, data: { credits: "lots" } }),
      "svc.billing.ledger": "not json at all",
      "svc.billing.reserve": JSON.stringify({ ok: false, error: { code: "FROM_THE_FUTURE", message: "new code" } }),
    };
    nc.subscribe("svc.billing.*", {
      callback: (_e, m) => {
        m.respond(replies[m.subject] ?? "{}");
      },
    });
    await nc.flush();
  });
  afterAll(async () => nats?.stop());

  it("answers INTERNAL (500), not a client error, when the reply's data or JSON is malformed", async () => {
    const client = createRpcClient(await nats.connect(), { timeoutMs: 2000 });
    const user_id = "00000000-0000-4000-8000-000000000000";
    await expect(client.call("billing", "balance", { user_id, tier: "free" })).rejects.toMatchObject({ code: "INTERNAL", status: 500 });
    await expect(client.call("billing", "ledger", { user_id, limit: 1, offset: 0 })).rejects.toMatchObject({ code: "INTERNAL", status: 500 });
  });

  it("turns an error code it does not know into INTERNAL, keeping the message", async () => {
    const client = createRpcClient(await nats.connect(), { timeoutMs: 2000 });
    const call = client.call("billing", "reserve", { user_id: "00000000-0000-4000-8000-000000000000", job_id: "00000000-0000-4000-8000-000000000001", amount: 1 });
    await expect(call).rejects.toMatchObject({ code: "INTERNAL", message: "new code" });
  });
});
