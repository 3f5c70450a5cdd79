import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { streams, type JobEvent } from "@cutroom/contracts";
import { jetstreamManager } from "@nats-io/jetstream";
import { createNatsLogins, natsConnectOptions, startNatsCluster, type NatsCluster } from "@cutroom/devstack";
import { createEventPublisher, createLogger, ensureStreams } from "@cutroom/runtime";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEventHub } from "./event-hub.ts";

// A 3-node cluster: the gateway's node dies, its client reconnects to another, and live events must follow it there.
let cluster: NatsCluster;
let dir: string;
const logins = createNatsLogins();
const conns: NatsConnection[] = [];
beforeAll(async () => {
  dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "hub-cluster-"));
  cluster = await startNatsCluster({ dir, logins });
  await ensureStreams(await as("job-service", cluster.urls), { replicas: 3 });
}, 90_000);
afterAll(async () => {
  for (const nc of conns) await nc.close().catch(() => {});
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function as(name: "gateway" | "job-service", servers: string[]) {
  const nc = await connect({ ...natsConnectOptions(servers[0]!, logins, name), servers, noRandomize: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  conns.push(nc);
  return nc;
}

it("keeps delivering live events within seconds when the gateway's NATS node dies and its client reconnects to another", { timeout: 60_000 }, async () => {
  // The gateway is on the node that leads JOB_EVENTS (its consumer lives there too); job-service publishes through another.
  const admin = await as("job-service", cluster.urls);
  const leader = (await (await jetstreamManager(admin)).streams.info(streams.jobEvents.name)).cluster!.leader!;
  const dead = Number(/(\d+)$/.exec(leader)![1]) - 1;
  const gateway = await as("gateway", [cluster.urls[dead]!, ...cluster.urls.filter((_, i) => i !== dead)]);
  const hub = createEventHub(gateway, createLogger("gateway", "silent"), { retryMs: 100 });
  await hub.ready;
  const publisher = createEventPublisher(await as("job-service", cluster.urls.filter((_, i) => i !== dead)));
  const jobId = crypto.randomUUID();
  const seen: JobEvent[] = [];
  hub.listen(jobId, (e) => seen.push(e));
  await publisher.publish(jobId, { type: "status", status: "queued" });
  await expect.poll(() => seen.length, { timeout: 5000 }).toBe(1);

  await cluster.killNode(dead);
  // Events the job goes on publishing while (and after) the gateway moves to another node.
  const until = Date.now() + 12_000;
  let progress = 0;
  const publishing = (async () => {
    while (Date.now() < until) {
      await publisher.publish(jobId, { type: "progress", progress: ++progress }).catch(() => progress--);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  // Within 8 s of the node's death the events arrive again (the pull that waited on the dead node stalled 30 s before).
  await expect.poll(() => seen.length, { timeout: 8000, interval: 100 }).toBeGreaterThan(3);
  await publishing;
  await expect.poll(() => seen.at(-1)?.seq, { timeout: 5000 }).toBe(progress + 1);
  expect(seen.map((e) => e.seq)).toEqual(Array.from({ length: seen.length }, (_, i) => i + 1));
  await hub.close();
});
