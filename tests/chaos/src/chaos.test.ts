import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runChaos, reportTable, shortFaults } from "./chaos.ts";
import { startChaosCluster, type ChaosCluster } from "./cluster.ts";
import { prepareClient } from "./setup.ts";

// The short chaos run of npm test: the cluster under load while a worker, job-service, a gateway and a
// NATS node are killed in turn (`npm run chaos` kills every kind and stops Postgres too).
let cluster: ChaosCluster;
beforeAll(async () => {
  cluster = await startChaosCluster({ parentDir: process.env.CUTROOM_TEST_DIR });
});
afterAll(async () => cluster?.stop());

it("loses nothing, charges once and keeps every live stream whole while processes die", async () => {
  const client = await prepareClient(cluster.gateways[0]!, cluster.databaseUrl);
  // Back to steady within the stated time: every job a fault slowed has ended 30 s after it struck.
  // 1.5 jobs a second: the cluster's 17 apps, 3 NATS nodes, Postgres and ffmpeg runs share 2 cores here.
  // At 3 a second a slower machine of that size fell behind before any fault (its audio jobs queued
  // longer with every minute), so no recovery time could hold; at 2 its slowest recovery came within
  // 2.2 s of the bound (docs/RELIABILITY.md).
  const report = await runChaos({ cluster, ...client, perSecond: 1.5, faults: shortFaults, baselineMs: 5000, downMs: 2000, settleMs: 5000, drainMs: 60_000, recoverWithinMs: 30_000 });
  console.log(reportTable(report));
  writeFileSync(join(cluster.dir, "report.json"), JSON.stringify(report, null, 2));
  expect(report.failures).toEqual([]);
  expect(report.verdict.accepted).toBeGreaterThan(30);
});
