import { isTerminalEvent, type JobEvent } from "@cutroom/contracts";
import { readJobEvents, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ensureWorkerConsumer } from "./consumer.ts";
import type { JobContext } from "./types.ts";
import { pixelOwner, startWorkerRig, type WorkerRig } from "./test-fixture.ts";
import type { WorkerConfig } from "./worker.ts";

/*
 * Retry timing against a real nats-server and the real job-service: what the owner is told
 * ("retrying in N s") must be when the next attempt really starts. Its own file, so the
 * consumer's settings (ack wait, attempts) are this test's alone.
 */

// An ack wait well above the retry delays, so a redelivery that waits for it instead stands out.
const config: WorkerConfig = { concurrency: 2, ackWaitMs: 4000, maxAttempts: 3, retryBaseMs: 500, tmpDir: "", rpcTimeoutMs: 2000 };

let rig: WorkerRig;
let nc: NatsConnection;
let client: RpcClient;

/** When each attempt of a job started and, if it failed, when it threw. */
const attempts = new Map<string, { startedAt: number; failedAt?: number }[]>();
const handler = async (ctx: JobContext<unknown>) => {
  const list = attempts.get(ctx.job.id) ?? [];
  attempts.set(ctx.job.id, list);
  const attempt = { startedAt: Date.now() } as { startedAt: number; failedAt?: number };
  list.push(attempt);
  if (list.length < 3) {
    attempt.failedAt = Date.now();
    throw new Error("connection reset by peer");
  }
  return { files: [], attempt: ctx.job.attempt };
};

beforeAll(async () => {
  rig = await startWorkerRig({ db: "retry", tmpPrefix: "worker-retry-", worker: "worker-retry" }, config, handler);
  ({ nc, client } = rig);
});
afterAll(() => rig?.stop());

async function enqueue(): Promise<string> {
  const { owner, fileId } = await pixelOwner(client, 10);
  const { job } = await client.call("job", "create", { body: { type: "image.resize", input: { file_id: fileId, width: 64 } } }, { caller: owner });
  return job.id;
}

describe("retry notices", () => {
  it("starts each next attempt after exactly the delay the retry notice announced", async () => {
    const jobId = await enqueue();
    const events: JobEvent[] = await vi.waitFor(
      async () => {
        const all = await readJobEvents(nc, jobId);
        if (!all.some(isTerminalEvent)) throw new Error("no terminal event yet");
        return all;
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(events.at(-1)).toMatchObject({ type: "result", status: "succeeded", result: { attempt: 3 } });

    // job-service puts the job back queued after each retryable failure and says when it runs again (ADR 039).
    const notices = events.flatMap((e) => (e.type === "status" && e.status === "queued" && e.message?.includes("retrying") ? [e.message] : []));
    const announcedMs = notices.map((message, i) => {
      const match = /^attempt (\d) of 3 failed \(WORKER_ERROR: processing failed\); retrying in ([\d.]+) s$/.exec(message);
      expect(match, message).not.toBeNull();
      expect(Number(match![1])).toBe(i + 1);
      return Number(match![2]) * 1000;
    });
    // job-service's backoff from the rig's base: 0.5 s, then 1 s, each with up to a fifth more at random.
    expect(announcedMs).toHaveLength(2);
    expect(announcedMs[0]).toBeGreaterThanOrEqual(config.retryBaseMs);
    expect(announcedMs[1]).toBeGreaterThanOrEqual(2 * config.retryBaseMs);

    const runs = attempts.get(jobId)!;
    expect(runs).toHaveLength(3);
    for (const [i, announced] of announcedMs.entries()) {
      const gap = runs[i + 1]!.startedAt - runs[i]!.failedAt!;
      // Never early; late only by the claim round trip and a loaded machine's scheduling.
      expect(gap, `attempt ${i + 2} started ${gap} ms after attempt ${i + 1} failed; announced ${announced} ms`).toBeGreaterThanOrEqual(announced - 100);
      expect(gap, `attempt ${i + 2} started ${gap} ms after attempt ${i + 1} failed; announced ${announced} ms`).toBeLessThanOrEqual(announced + 1000 + announced / 4);
    }
  }, 40_000);

  it("clears the backoff and the delivery limit a consumer made by an earlier version still carries", async () => {
    const jsm = await jetstreamManager(nc);
    const seconds = (n: number) => n * 1_000_000_000;
    await jsm.consumers.add("JOBS", {
      durable_name: "worker-audio",
      filter_subject: "jobs.run.audio.>",
      ack_policy: AckPolicy.Explicit,
      ack_wait: seconds(30),
      max_deliver: 3,
      backoff: [seconds(30), seconds(60)],
    });
    await ensureWorkerConsumer(nc, "audio", { ackWaitMs: 30_000 });
    const { config: after } = await jsm.consumers.info("JOBS", "worker-audio");
    expect(after.backoff ?? []).toEqual([]);
    // The backoff stretched every retry; the limit stranded a message whose last delivery died unsettled.
    expect(after).toMatchObject({ ack_wait: seconds(30), max_deliver: -1 });
  });
});
