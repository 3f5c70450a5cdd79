import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isTerminalEvent, jobLimits, subjects, type ClaimReply, type JobDispatch } from "@cutroom/contracts";
import { ensureStreams, readJobEvents, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import { silentLogger, startTestNats } from "@cutroom/testing";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { imageHandlers, pixelOwner } from "./test-fixture.ts";
import type { JobContext } from "./types.ts";
import { startJobServiceForWorkers } from "./test-job-service.ts";
import { startWorker, type Worker, type WorkerConfig } from "./worker.ts";

/*
 * The consumer's last delivery (max_deliver = JOB_MAX_ATTEMPTS) of a job that could not run for a
 * reason outside the job (job-service down, the worker stopping): a nak then is never redelivered yet
 * stays in the work queue, where job-service's reconciler takes it for a job still queued. The worker
 * must hand it back to job-service instead, so the job is dispatched again rather than stuck running.
 */

const TYPE = "image.resize";
const SUBJECT = subjects.jobRun("image", TYPE);
const base: WorkerConfig = { concurrency: 1, ackWaitMs: 1000, maxAttempts: 2, retryBaseMs: 200, tmpDir: "", rpcTimeoutMs: 1000 };

type Handler = (ctx: JobContext<any>) => Promise<unknown>;

/** How many messages the JOBS work queue holds for the image.resize subject. */
const queued = async (jsm: JetStreamManager) => (await jsm.streams.info("JOBS", { subjects_filter: SUBJECT })).state.subjects?.[SUBJECT] ?? 0;

describe("a job whose last delivery fails for want of job-service (a stand-in answers its subjects)", () => {
  let dir: string;
  let config: WorkerConfig;
  let nats: Awaited<ReturnType<typeof startTestNats>>;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let worker: Worker;
  /** What the stand-in answers each method with, and how often it was asked. */
  const answers: Record<string, (body: Record<string, unknown>) => unknown> = {};
  const asked: Record<string, number> = { claim: 0, finish: 0 };
  let behaviour: Handler = async () => ({ files: [] });

  beforeAll(async () => {
    dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "last-delivery-"));
    config = { ...base, tmpDir: dir };
    nats = await startTestNats();
    nc = await nats.connect();
    await ensureStreams(nc);
    jsm = await jetstreamManager(nc);
    nc.subscribe(subjects.rpc("job", "*"), {
      callback: (_err, m) => {
        const method = m.subject.split(".").at(-1)!;
        asked[method] = (asked[method] ?? 0) + 1;
        const answer = answers[method];
        m.respond(JSON.stringify(answer ? answer(m.json<{ body: Record<string, unknown> }>().body) : { ok: true, data: {} }));
      },
    });
    worker = await startWorker(await nats.connect(), silentLogger(), { name: "worker-last", queue: "image", handlers: imageHandlers((ctx) => behaviour(ctx)) }, config);
  });
  afterAll(async () => {
    await worker?.stop({ graceMs: 0 });
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const dispatch = async (): Promise<string> => {
    const jobId = randomUUID();
    const payload: JobDispatch = { job_id: jobId, user_id: randomUUID(), type: TYPE, input: { file_id: randomUUID(), width: 64 }, dispatch: 1 };
    await jetstream(nc).publish(SUBJECT, JSON.stringify(payload), { msgID: `${jobId}:1` });
    return jobId;
  };
  const claimGranted = (body: Record<string, unknown>): { ok: true; data: ClaimReply } => ({
    ok: true,
    data: { run: true, job: { id: body.job_id as string, user_id: randomUUID(), type: TYPE, input: { file_id: randomUUID(), width: 64 }, attempt: 1, limits: jobLimits("free") } },
  });
  it("takes the job out of the work queue after the last claim job-service could not answer", { timeout: 15_000 }, async () => {
    answers.claim = () => ({ ok: false, error: { code: "SERVICE_UNAVAILABLE", message: "job service cannot reach its database" } });
    await dispatch();
    await vi.waitFor(async () => expect(await queued(jsm)).toBe(0), { timeout: 8000, interval: 100 });
    expect(asked.claim).toBe(config.maxAttempts);
    expect((await jsm.consumers.info("JOBS", "worker-image")).num_ack_pending).toBe(0);
  });

  it("takes the job out of the work queue when the last attempt's failure could not be reported", { timeout: 15_000 }, async () => {
    answers.claim = claimGranted;
    const reported: Record<string, unknown>[] = [];
    answers.finish = (body) => {
      reported.push(body);
      return { ok: false, error: { code: "INTERNAL", message: "internal error" } };
    };
    let runs = 0;
    behaviour = async () => {
      runs++;
      throw new Error("connection reset by peer");
    };
    await dispatch();
    await vi.waitFor(async () => expect(await queued(jsm)).toBe(0), { timeout: 8000, interval: 100 });
    expect(runs).toBe(config.maxAttempts);
    // Each attempt's failure goes to job-service, which decides the retry (ADR 039); each report failed,
    // so the first delivery was nak'ed back and the last one termed, leaving the job to the reconciler.
    expect(asked.finish).toBe(config.maxAttempts);
    expect(reported.map((b) => b.outcome)).toEqual(Array(config.maxAttempts).fill(expect.objectContaining({ status: "failed", retryable: true })));
    expect((await jsm.consumers.info("JOBS", "worker-image")).num_ack_pending).toBe(0);
  });
});

describe("a job whose worker stops during its last delivery (the real job-service)", () => {
  let stack: Awaited<ReturnType<typeof startJobServiceForWorkers>>;
  let nats: Awaited<ReturnType<typeof startJobServiceForWorkers>>["nats"];
  let nc: NatsConnection;
  let client: RpcClient;
  let config: WorkerConfig;

  beforeAll(async () => {
    stack = await startJobServiceForWorkers("last-delivery-stack", base);
    ({ nats, nc, client, config } = stack);
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it("is dispatched again by job-service and runs to success on the next worker", { timeout: 30_000 }, async () => {
    const dispatches: number[] = [];
    nc.subscribe(SUBJECT, { callback: (_err, m) => void dispatches.push(m.json<JobDispatch>().dispatch) });
    let runs = 0;
    const handler: Handler = async (ctx) => {
      runs++;
      if (runs === 1) throw new Error("connection reset by peer");
      if (runs === 2) {
        await once(ctx.signal, "abort");
        throw ctx.signal.reason;
      }
      return { files: [], run: runs };
    };
    const first = await startWorker(await nats.connect(), silentLogger(), { name: "worker-first", queue: "image", handlers: imageHandlers(handler) }, config);
    let next: Worker | undefined;
    try {
      const { owner, fileId } = await pixelOwner(client, 10);
      const { job } = await client.call("job", "create", { body: { type: TYPE, input: { file_id: fileId, width: 64 } } }, { caller: owner });
      await vi.waitFor(() => expect(runs).toBe(2), { timeout: 10_000, interval: 50 });
      // The last delivery is in its handler: the worker stops and hands it back.
      await first.stop({ graceMs: 100 });

      next = await startWorker(await nats.connect(), silentLogger(), { name: "worker-next", queue: "image", handlers: imageHandlers(handler) }, config);
      const last = await vi.waitFor(
        async () => {
          const found = (await readJobEvents(nc, job.id)).find(isTerminalEvent);
          if (!found) throw new Error("no terminal event yet");
          return found;
        },
        { timeout: 20_000, interval: 100 },
      );
      expect(last).toMatchObject({ type: "result", status: "succeeded", result: { run: 3 } });
      // Dispatched again once by the hand-back; on a loaded machine the reconciler may re-dispatch a
      // queued job the next worker has not taken yet, which the claim refuses: the job still runs once more.
      expect(dispatches.slice(0, 2)).toEqual([1, 2]);
      expect(runs).toBe(3);
      expect(await client.call("job", "get", { job_id: job.id }, { caller: owner })).toMatchObject({ status: "succeeded", attempts: 3 });
    } finally {
      await first.stop({ graceMs: 0 });
      await next?.stop({ graceMs: 0 });
    }
  });
});
