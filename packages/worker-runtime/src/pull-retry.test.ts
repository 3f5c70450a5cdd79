import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { streams, subjects } from "@cutroom/contracts";
import { createLogger, ensureStreams, type NatsConnection } from "@cutroom/runtime";
import { startTestNats } from "@cutroom/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { imageHandlers } from "./test-fixture.ts";
import { nextPullRetryMs, startWorker, type WorkerConfig } from "./worker.ts";

const config: WorkerConfig = { concurrency: 1, ackWaitMs: 1500, maxAttempts: 2, retryBaseMs: 1000, tmpDir: "", rpcTimeoutMs: 2000 };

let dir: string;
let nats: Awaited<ReturnType<typeof startTestNats>>;
let nc: NatsConnection;

beforeAll(async () => {
  dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "pull-retry-"));
  config.tmpDir = dir;
  nats = await startTestNats();
  nc = await nats.connect();
});
afterAll(async () => {
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("a worker whose pulls fail while JetStream is away", () => {
  it("waits 1 s after a failed pull, twice as long after each next one, never more than 10 s", () => {
    const waits: number[] = [];
    for (let ms = 0, i = 0; i < 7; i++) waits.push((ms = nextPullRetryMs(ms)));
    expect(waits).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  });

  it("warns once and retries quietly, then says once that it pulls again and takes jobs", { timeout: 90_000 }, async () => {
    const lines: { level: number; msg: string }[] = [];
    const log = createLogger("test", "debug", { write: (l: string) => void lines.push(JSON.parse(l)) });
    const worker = await startWorker(await nats.connect(), log, { name: "worker-image", queue: "image", handlers: imageHandlers(async () => ({ files: [] })) }, config);
    try {
      // The broker lost its store: every pull fails until job-service makes the stream again.
      await (await jetstreamManager(nc)).streams.delete(streams.jobs.name);
      const failed = () => lines.filter((l) => l.msg.startsWith("pulling jobs failed"));
      // Several failed pulls (a busy machine spaces them out: wait for them rather than for a fixed time).
      await vi.waitFor(() => expect(failed().length).toBeGreaterThan(2), { timeout: 40_000, interval: 200 });
      // Every failed pull was a warning; now the first one is, and the retries go on quietly.
      expect(failed().filter((l) => l.level === 40)).toHaveLength(1);

      await ensureStreams(nc);
      // Not a dispatch, so no job-service is needed to see the worker take it: it drops it and says so.
      await jetstream(nc).publish(subjects.jobRun("image", "image.resize"), "not a dispatch");
      await vi.waitFor(() => expect(lines.map((l) => l.msg)).toContain("dropping an unparsable dispatch"), { timeout: 15_000, interval: 100 });
      expect(lines.filter((l) => l.msg === "pulling jobs again")).toHaveLength(1);
    } finally {
      await worker.stop({ graceMs: 0 });
    }
  });
});
