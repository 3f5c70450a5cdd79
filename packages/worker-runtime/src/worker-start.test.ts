import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { streams, subjects } from "@cutroom/contracts";
import { startNatsCluster, type NatsCluster } from "@cutroom/devstack";
import { connectNats, createLogger, ensureStreams, type NatsConnection } from "@cutroom/runtime";
import { silentLogger } from "@cutroom/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { consumerName } from "./consumer.ts";
import { imageHandlers } from "./test-fixture.ts";
import { startWorker, type Worker, type WorkerConfig } from "./worker.ts";

/*
 * A worker started while its 3-node NATS cluster has no quorum: its consumer can be neither looked
 * up nor made (the request times out). In the chaos run a worker died on that while the cluster formed.
 */

const config: WorkerConfig = { concurrency: 1, ackWaitMs: 1500, maxAttempts: 2, retryBaseMs: 1000, tmpDir: "", rpcTimeoutMs: 2000 };

let dir: string;
let cluster: NatsCluster;
let nc: NatsConnection;

beforeAll(async () => {
  dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "worker-start-"));
  config.tmpDir = join(dir, "tmp");
  cluster = await startNatsCluster({ dir: join(dir, "nats") });
  nc = await connectNats(cluster.url, "worker-start-test", silentLogger());
  await ensureStreams(nc, { replicas: 3 });
  // Stopping two nodes the moment the streams are made left JOB_EVENTS' new group without a leader
  // once they were back (two runs in six on a loaded machine): the streams' replicas first.
  await cluster.current();
});
afterAll(async () => {
  await nc?.close();
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("startWorker on a NATS cluster short of its quorum", () => {
  it("waits for JetStream instead of failing to start, then takes jobs once the cluster is back", { timeout: 180_000 }, async () => {
    const lines: { level: number; msg: string }[] = [];
    const log = createLogger("test", "warn", { write: (l: string) => void lines.push(JSON.parse(l)) });
    await Promise.all([cluster.stopNode(1), cluster.stopNode(2)]);

    const workerNc = await connectNats(cluster.url, "worker-image", silentLogger());
    let worker: Worker | undefined;
    let failure: unknown;
    void startWorker(workerNc, log, { name: "worker-image", queue: "image", handlers: imageHandlers(async () => ({ files: [] })) }, config).then(
      (w) => void (worker = w),
      (err) => void (failure = err),
    );
    try {
      // Before the fix, the first timed-out lookup rejected startWorker and the process exited.
      await vi.waitFor(() => expect(failure ?? lines.find((l) => /JetStream consumer; trying again/.test(l.msg))).toBeDefined(), { timeout: 15_000, interval: 100 });
      expect(failure).toBeUndefined();
      expect(worker).toBeUndefined();

      // One after the other: the first restores the quorum, the second joins a cluster that has one.
      await cluster.startNode(1);
      await cluster.startNode(2);
      // A cluster on a busy machine takes its time to elect leaders again: generous bounds, the point is that it starts at all.
      await vi.waitFor(() => expect(worker ?? failure).toBeDefined(), { timeout: 60_000, interval: 100 });
      expect(failure).toBeUndefined();

      const jsm = await jetstreamManager(nc);
      expect((await jsm.consumers.info(streams.jobs.name, consumerName("image"))).config.filter_subject).toBe(subjects.jobRunQueue("image"));
      // Not a dispatch, so no job-service is needed to see the worker take it: it drops it and says so.
      await jetstream(nc).publish(subjects.jobRun("image", "image.resize"), "not a dispatch");
      await vi.waitFor(() => expect(lines.map((l) => l.msg)).toContain("dropping an unparsable dispatch"), { timeout: 30_000, interval: 100 });
      await vi.waitFor(async () => expect((await jsm.streams.info(streams.jobs.name)).state.messages).toBe(0), { timeout: 15_000, interval: 100 });
    } finally {
      await worker?.stop({ graceMs: 0 });
      await workerNc.close();
    }
  });
});
