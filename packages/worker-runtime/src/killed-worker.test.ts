import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { isTerminalEvent, subjects } from "@cutroom/contracts";
import { readJobEvents, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import { silentLogger } from "@cutroom/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { imageHandlers, pixelOwner } from "./test-fixture.ts";
import { startJobServiceForWorkers } from "./test-job-service.ts";
import { startWorker, type Worker, type WorkerConfig } from "./worker.ts";

/*
 * Every attempt at a job dies with its worker process (SIGKILL: a node lost, or a job that crashes
 * its worker every time), the last one too. No delivery of the job settled, so nothing but the ack
 * wait tells the broker; the job must still end, failed as lost, not stay running for good.
 */

const TYPE = "image.resize";
const SUBJECT = subjects.jobRun("image", TYPE);
const CREDITS = 10;
const base: WorkerConfig = { concurrency: 1, ackWaitMs: 1000, maxAttempts: 2, retryBaseMs: 200, tmpDir: "", rpcTimeoutMs: 1000 };

describe("a job whose every attempt's worker process is killed (the real job-service)", () => {
  let stack: Awaited<ReturnType<typeof startJobServiceForWorkers>>;
  let nats: Awaited<ReturnType<typeof startJobServiceForWorkers>>["nats"];
  let nc: NatsConnection;
  let client: RpcClient;
  let config: WorkerConfig;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startJobServiceForWorkers("killed-worker", base);
    ({ nats, nc, client, config } = stack);
  }, 60_000);
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await stack?.stop();
  });

  /** A worker in a process of its own, killed (SIGKILL) as it runs the job's attempt `killAt`; resolves once it is gone. */
  const killedAtAttempt = (killAt: number) =>
    new Promise<void>((resolve, reject) => {
      const script = fileURLToPath(new URL("./test-worker-process.ts", import.meta.url));
      const child = spawn(process.execPath, ["--import", "tsx", script, nats.url, JSON.stringify(config)], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
      children.push(child);
      child.on("message", (m: { attempt?: number }) => m.attempt === killAt && child.kill("SIGKILL"));
      child.once("exit", (code, signal) => (signal === "SIGKILL" ? resolve() : reject(new Error(`the worker process exited on its own (${code ?? signal})`))));
    });

  it("fails the job as lost and releases its credits once the last attempt's worker is killed, without running it again", { timeout: 60_000 }, async () => {
    const { owner, fileId } = await pixelOwner(client, CREDITS);
    const { job } = await client.call("job", "create", { body: { type: TYPE, input: { file_id: fileId, width: 64 } } }, { caller: owner });
    await killedAtAttempt(1);
    // The first delivery's ack wait runs out and the next, the last, goes to the next worker.
    await killedAtAttempt(config.maxAttempts);
    const killedAt = Date.now();

    let runs = 0;
    const next: Worker = await startWorker(
      await nats.connect(),
      silentLogger(),
      {
        name: "worker-next",
        queue: "image",
        handlers: imageHandlers(async () => {
          runs++;
          return { files: [] };
        }),
      },
      config,
    );
    try {
      const last = await vi.waitFor(
        async () => {
          const found = (await readJobEvents(nc, job.id)).find(isTerminalEvent);
          if (!found) throw new Error("no terminal event yet");
          return found;
        },
        { timeout: 15_000, interval: 100 },
      );
      expect(last).toMatchObject({ type: "error", status: "failed", error: { code: "WORKER_LOST", message: `no worker finished this job in ${config.maxAttempts} attempts` } });
      // The ack wait, a pull and the report: seconds, not forever.
      expect(Date.now() - killedAt).toBeLessThan(10_000);
      expect(runs).toBe(0);
      expect(await client.call("job", "get", { job_id: job.id }, { caller: owner })).toMatchObject({
        status: "failed",
        attempts: config.maxAttempts,
        error: { code: "WORKER_LOST" },
        credits: { state: "released" },
      });
      expect(await client.call("billing", "balance", { user_id: owner.user_id, tier: owner.tier })).toMatchObject({ credits: CREDITS, reserved: 0 });
      const jsm = await jetstreamManager(nc);
      await vi.waitFor(async () => expect((await jsm.streams.info("JOBS", { subjects_filter: SUBJECT })).state.subjects?.[SUBJECT] ?? 0).toBe(0), { timeout: 5000, interval: 100 });
    } finally {
      await next.stop({ graceMs: 0 });
    }
  });
});
