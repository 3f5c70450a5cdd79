import { instanceHealthWindowMs } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newInstance, runChecks, serveInstanceHealth } from "./health.ts";
import { createLogger } from "./logger.ts";
import { startNatsForTest } from "./test-nats.ts";

const never = () => new Promise<never>(() => {});

/** What every instance of `name` answers within /health's window, as the gateway collects it. */
async function collect(nc: Awaited<ReturnType<Awaited<ReturnType<typeof startNatsForTest>>["connect"]>>, name: string) {
  const replies: { ok: boolean; data: Record<string, any> }[] = [];
  for await (const msg of await nc.requestMany(`svc.${name}.health.instances`, "{}", { strategy: "timer", maxWait: instanceHealthWindowMs })) replies.push(msg.json());
  return replies;
}

describe("instance health", () => {
  let nats: Awaited<ReturnType<typeof startNatsForTest>>;
  beforeAll(async () => {
    nats = await startNatsForTest();
  });
  afterAll(async () => nats?.stop());
  const log = createLogger("test", "silent");

  it("answers within /health's window when its database check hangs, as down with that check timed out", async () => {
    const nc = await nats.connect();
    const instance = newInstance("billing-service");
    const server = serveInstanceHealth(nc, "billing", instance, () => runChecks("billing", { database: never, nats: () => nc.rtt() }), log);
    await nc.flush();
    const replies = await collect(await nats.connect(), "billing");
    expect(replies).toEqual([
      {
        ok: true,
        data: expect.objectContaining({
          id: instance.id,
          status: "down",
          checks: { database: { status: "down", error: expect.stringMatching(/timed out/) }, nats: expect.objectContaining({ status: "up" }) },
        }),
      },
    ]);
    await server.drain();
  });

  it("answers as down, in time, when its health function hangs or throws instead of reporting", async () => {
    const nc = await nats.connect();
    const hangs = serveInstanceHealth(nc, "worker-test", newInstance("hangs"), never, log);
    const throws = serveInstanceHealth(nc, "worker-test", newInstance("throws"), async () => Promise.reject(new Error("pool is closed")), log);
    await nc.flush();
    const replies = await collect(await nats.connect(), "worker-test");
    expect(replies.map((r) => [r.data.id.split("-")[0], r.data.status, r.data.checks.health?.error]).sort()).toEqual([
      ["hangs", "down", expect.stringMatching(/timed out/)],
      ["throws", "down", "pool is closed"],
    ]);
    await Promise.all([hangs.drain(), throws.drain()]);
  });
});
