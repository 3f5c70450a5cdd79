import { describe, expect, it } from "vitest";
import { createTestDatabase } from "./database.ts";
import { startStack } from "./stack.ts";
import { waitFor } from "./wait.ts";

describe("startStack with instances, supervision and a NATS cluster", () => {
  it("serves from two gateways, brings a killed one back, and stays ready with a NATS node down", { timeout: 240_000 }, async () => {
    const db = await createTestDatabase("cluster");
    const stack = await startStack({
      databaseUrl: db.url,
      apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"],
      instances: { gateway: 2, "job-service": 2 },
      natsCluster: true,
      supervise: { firstDelayMs: 200 },
      parentDir: process.env.CUTROOM_TEST_DIR,
    });
    const ready = (port: string | number) => waitFor(`gateway on ${port} to be ready`, async () => (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined))?.status === 200, 60_000, 250);
    try {
      const second = stack.services.env("gateway-2").PORT!;
      expect(stack.natsUrl.split(",")).toHaveLength(3);
      await ready(new URL(stack.url).port);
      await ready(second);

      const before = stack.services.children.get("gateway-2")!.pid;
      await stack.services.kill("gateway-2");
      const after = await stack.services.ready("gateway-2");
      expect(after.pid).not.toBe(before);
      await ready(second);

      await stack.natsCluster!.stopNode(0);
      await ready(new URL(stack.url).port);
      await stack.natsCluster!.startNode(0);
    } finally {
      await stack.stop();
      await db.drop();
    }
  });
});
