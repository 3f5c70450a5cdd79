import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRpcClient } from "@cutroom/runtime";
import { createMigratedDb, startStack, startTestNats } from "@cutroom/testing";
import type { WorkerConfig } from "./worker.ts";

/**
 * For worker tests against the real job-service: job-service, billing and storage as processes on a
 * database and a nats-server of the test's own, with short reconcile timings (a job handed back or
 * lost is dispatched again within seconds), and the worker config with a temp dir of its own.
 */
export async function startJobServiceForWorkers(name: string, base: WorkerConfig) {
  const dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), `${name}-`));
  const [db, nats] = await Promise.all([createMigratedDb(name.replaceAll("-", "_")), startTestNats()]);
  const services = await startStack({
    databaseUrl: db.url,
    natsUrl: nats.url,
    apps: ["billing-service", "storage-service", "job-service"],
    parentDir: process.env.CUTROOM_TEST_DIR,
    env: { RECONCILE_INTERVAL_MS: "250", REDISPATCH_AFTER_MS: "500", JOB_LEASE_MS: "1000" },
  });
  const nc = await nats.connect();
  return {
    db,
    nats,
    services,
    nc,
    client: createRpcClient(nc, { timeoutMs: 5000 }),
    config: { ...base, tmpDir: dir },
    stop: async () => {
      await services.stop();
      await nats.stop();
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
