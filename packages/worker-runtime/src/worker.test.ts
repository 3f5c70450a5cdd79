import { once } from "node:events";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isTerminalEvent, streams, subjects, type Caller, type JobEvent } from "@cutroom/contracts";
import { ensureStreams, readJobEvents, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import { freePort, silentLogger } from "@cutroom/testing";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { serveWorkerHealth } from "./health.ts";
import { JobFailure, RetryableFailure, checkLimits } from "./job-failure.ts";
import type { InputFile, JobContext, JobOutput } from "./types.ts";
import { downloadToFile } from "./transfer.ts";
import { imageHandlers, PIXEL, pixelOwner, startWorkerRig, type WorkerRig } from "./test-fixture.ts";
import { startWorker, type Worker, type WorkerConfig } from "./worker.ts";

/*
 * The consumer loop against the real job-service (claims, finish, events consumer), storage-service
 * (fs driver, its own data plane for signed URLs) and billing-service, each its own process on this
 * file's database and nats-server. Only the handler is the test's: it stands in for sharp.
 */

type Behaviour = (ctx: JobContext<{ file_id: string }>) => Promise<JobOutput>;
interface Enqueued {
  id: string;
  owner: Caller;
  fileId: string;
}

const TYPE = "image.resize";
const CREDITS = 10;
const config: WorkerConfig = { concurrency: 3, ackWaitMs: 1500, maxAttempts: 2, retryBaseMs: 1000, tmpDir: "", rpcTimeoutMs: 2000 };
// What a test waits for (a handler called, a temp dir gone): vi.waitFor gives up after 1 s by default, less than a loaded machine may take.
const waiting = { timeout: 10_000, interval: 50 };

let rig: WorkerRig;
let nats: WorkerRig["nats"];
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let client: RpcClient;
let worker: Worker;

// Each job has an owner of its own, so the handler can look up what to do before the job id is known.
const behaviours = new Map<string, Behaviour>();
const calls = new Map<string, number>();
const handler = async (ctx: JobContext<{ file_id: string }>) => {
  calls.set(ctx.job.id, (calls.get(ctx.job.id) ?? 0) + 1);
  return behaviours.get(ctx.job.userId)!(ctx);
};
const handlers = imageHandlers(handler);

beforeAll(async () => {
  rig = await startWorkerRig({ db: "worker", tmpPrefix: "worker-tmp-", worker: "worker-test" }, config, handler);
  ({ nats, nc, client, worker } = rig);
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
});
afterAll(() => rig?.stop());

/** A new user with CREDITS credits uploads a pixel (createUpload → PUT → confirmUpload) and asks for a resize of it. */
async function enqueue(behaviour: Behaviour): Promise<Enqueued> {
  const { owner, fileId } = await pixelOwner(client, CREDITS);
  behaviours.set(owner.user_id, behaviour);
  const { job } = await client.call("job", "create", { body: { type: TYPE, input: { file_id: fileId, width: 64 } } }, { caller: owner });
  return { id: job.id, owner, fileId };
}

const getJob = (job: Enqueued) => client.call("job", "get", { job_id: job.id }, { caller: job.owner });
const balance = async (job: Enqueued) => {
  const { credits, reserved } = await client.call("billing", "balance", { user_id: job.owner.user_id, tier: job.owner.tier });
  return { credits, reserved };
};

async function terminalEvent(jobId: string, timeout = 10_000): Promise<{ events: JobEvent[]; last: JobEvent }> {
  return vi.waitFor(
    async () => {
      const events = await readJobEvents(nc, jobId);
      const last = events.at(-1);
      if (!last || !isTerminalEvent(last)) throw new Error("no terminal event yet");
      return { events, last };
    },
    { timeout, interval: 100 },
  );
}

/** The claims job-service granted: each one announces the job running on a worker. */
const claimsOf = (events: JobEvent[]) => events.flatMap((e) => (e.type === "status" && e.status === "running" ? [e.message] : []));
const queued = async () => (await jsm.streams.info("JOBS")).state.messages;
const untilQueueEmpty = () => vi.waitFor(async () => expect(await queued()).toBe(0), { timeout: 10_000, interval: 100 });
const tmpLeft = () => readdir(config.tmpDir);

describe("worker runtime against the real job-service and storage-service", () => {
  it("fetches the input, uploads the output, reports stages and the result, then acks and charges once", async () => {
    const job = await enqueue(async (ctx) => {
      const input = await ctx.stage("fetch", () => ctx.fetchInput(ctx.input.file_id));
      ctx.log.info("fetched");
      const out = join(ctx.tmpDir, "out.txt");
      await ctx.stage("process", async () => writeFile(out, (await readFile(input.path)).subarray(1, 4).toString().toLowerCase()));
      const file = await ctx.stage("upload", () => ctx.uploadOutput(out, "out.txt", "text/plain"));
      return { files: [file], bytes: input.size };
    });

    const { events, last } = await terminalEvent(job.id);
    expect(last).toMatchObject({ type: "result", status: "succeeded", result: { bytes: PIXEL.length, files: [{ filename: "out.txt", content_type: "text/plain", size: 3 }] } });
    // Stages of a few milliseconds publish nothing (ADR 028): the result says they are done, and so does the row.
    expect(events.filter((e) => e.type === "stage" || e.type === "progress")).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(["status", "status", "log", "result"]);
    // Queued first: the dispatch goes out without waiting for the queued event's ack, never ahead of it in the job's events.
    expect(events.filter((e) => e.type === "status").map((e) => (e as { status: string }).status)).toEqual(["queued", "running"]);
    expect(events).toContainEqual(expect.objectContaining({ type: "log", message: "fetched" }));
    expect(claimsOf(events)).toEqual([`attempt 1 on worker-test-${process.pid}`]);

    const fileId = (last as Extract<JobEvent, { type: "result" }>).result.files[0]!.file_id;
    const output = await client.call("storage", "getFile", { file_id: fileId }, { caller: job.owner });
    expect(output).toMatchObject({ folder: "output", job_id: job.id, status: "ready", size: 3 });
    const { url } = await client.call("storage", "downloadUrl", { file_id: fileId }, { caller: job.owner });
    expect(await (await fetch(url)).text()).toBe("png");

    expect(await getJob(job)).toMatchObject({
      status: "succeeded",
      progress: 100,
      stages: ["fetch", "process", "upload"].map((name) => ({ name, status: "done" })),
      attempts: 1,
      credits: { amount: 1, state: "captured" },
    });
    expect(await balance(job)).toEqual({ credits: CREDITS - 1, reserved: 0 });
    await untilQueueEmpty();
    expect(await tmpLeft()).toEqual([]);
  });

  it("fetches its input and stores its output through the URLs its claim brought, with no call to storage of its own", async () => {
    // Every request to storage over NATS, whoever makes it: job-service's one jobAccess per claim, none from the worker.
    const asked: string[] = [];
    const sub = nc.subscribe(subjects.rpc("storage", "*"), { callback: (_err, msg) => void asked.push(msg.subject.split(".").pop()!) });
    await nc.flush();
    let fetched: InputFile | undefined;
    const job = await enqueue(async (ctx) => {
      const input = await ctx.fetchInput(ctx.input.file_id);
      fetched = input;
      const out = join(ctx.tmpDir, "out.png");
      await writeFile(out, await readFile(input.path));
      return { files: [await ctx.prepareOutput("small.png", "image/png").upload(out)] };
    });
    const { last } = await terminalEvent(job.id);
    sub.unsubscribe();
    // With what storage measured of it when it was stored (ADR 058): a handler need not probe it again.
    expect(fetched?.media).toEqual((await client.call("storage", "getFile", { file_id: job.fileId }, { caller: job.owner })).media);
    expect(fetched?.media).toMatchObject({ width: 1, height: 1 });
    expect(last).toMatchObject({ type: "result", status: "succeeded", result: { files: [{ filename: "small.png", content_type: "image/png", size: PIXEL.length }] } });
    const fileId = (last as Extract<JobEvent, { type: "result" }>).result.files[0]!.file_id;
    expect(await client.call("storage", "getFile", { file_id: fileId }, { caller: job.owner })).toMatchObject({ folder: "output", job_id: job.id, status: "ready", media: { width: 1, height: 1 } });
    const { url } = await client.call("storage", "downloadUrl", { file_id: fileId }, { caller: job.owner });
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(PIXEL)).toBe(true);
    expect(asked.filter((m) => m !== "createUpload" && m !== "confirmUpload" && m !== "getFile" && m !== "downloadUrl")).toEqual(["jobAccess"]);
  });

  it("runs a job in memory without making a temp dir: a small input read whole, bytes uploaded as the output", async () => {
    const seen: { bytes?: string; filename?: string; tmpDuring?: string[]; tooSmall?: unknown } = {};
    const job = await enqueue(async (ctx) => {
      const input = await ctx.readInput(ctx.input.file_id, 1024);
      // Past the bound given, nothing is read: the handler takes the file's way.
      seen.tooSmall = await ctx.readInput(ctx.input.file_id, PIXEL.length - 1);
      seen.bytes = input?.bytes.toString("hex");
      seen.filename = input?.filename;
      seen.tmpDuring = await tmpLeft();
      return { files: [await ctx.prepareOutput("copy.png", "image/png").upload(Buffer.concat([input!.bytes]))] };
    });
    const { last } = await terminalEvent(job.id);
    expect(last).toMatchObject({ type: "result", status: "succeeded", result: { files: [{ filename: "copy.png", size: PIXEL.length }] } });
    expect(seen).toEqual({ bytes: PIXEL.toString("hex"), filename: "pixel.png", tmpDuring: [], tooSmall: undefined });
    const fileId = (last as Extract<JobEvent, { type: "result" }>).result.files[0]!.file_id;
    const { url } = await client.call("storage", "downloadUrl", { file_id: fileId }, { caller: job.owner });
    expect(Buffer.from(await (await fetch(url)).arrayBuffer()).equals(PIXEL)).toBe(true);

    // A job that asks for its temp dir gets one, and it is gone once the job ends.
    let made = "";
    const other = await enqueue(async (ctx) => {
      made = ctx.tmpDir;
      await writeFile(join(made, "scratch"), "x");
      expect(await tmpLeft()).toEqual([made.split("/").pop()]);
      return { files: [] };
    });
    expect((await terminalEvent(other.id)).last).toMatchObject({ type: "result", status: "succeeded" });
    expect(made).toContain(other.id);
    await vi.waitFor(async () => expect(await tmpLeft()).toEqual([]), waiting);
  });

  it("announces a stage still running once the event delay has passed, and a stage that ended before it by its end only", async () => {
    const job = await enqueue(async (ctx) => {
      await ctx.stage("fetch", async () => {});
      ctx.progress(10);
      await ctx.stage("process", async () => {
        // Still running when its announcement is stored: a watcher learns of a stage that takes a while.
        await vi.waitFor(async () => expect((await readJobEvents(nc, ctx.job.id)).some((e) => e.type === "stage")).toBe(true), { timeout: 5000, interval: 20 });
      });
      throw new JobFailure("INVALID_MEDIA", "not an image");
    });
    const { events } = await terminalEvent(job.id);
    const shown = events.filter((e) => e.type === "stage" || e.type === "progress").map((e) => (e.type === "stage" ? `${e.stage}:${e.status}` : `progress:${e.progress}`));
    // The job failed, so nothing waiting is dropped: process:done comes too.
    expect(shown).toEqual(["fetch:done", "process:running", "progress:10", "process:done"]);
  });

  it("publishes what still waits before the result of a job that already showed its progress", async () => {
    const job = await enqueue(async (ctx) => {
      ctx.progress(10);
      await vi.waitFor(async () => expect((await readJobEvents(nc, ctx.job.id)).some((e) => e.type === "progress")).toBe(true), { timeout: 5000, interval: 20 });
      await ctx.stage("process", async () => {});
      return { files: [] };
    });
    const { events } = await terminalEvent(job.id);
    expect(events.slice(2).map((e) => (e.type === "stage" ? `${e.stage}:${e.status}` : e.type))).toEqual(["progress", "process:done", "result"]);
  });

  it("publishes every log and stage event of a job before its result, even ones sent just before the handler returns", async () => {
    const job = await enqueue(async (ctx) => {
      await ctx.stage("fetch", async () => {});
      for (let i = 0; i < 200; i++) ctx.log.info(`line ${i}`);
      return { files: [] };
    });
    const { events, last } = await terminalEvent(job.id);
    expect(last).toMatchObject({ type: "result", status: "succeeded" });
    expect(events.filter((e) => e.type === "log").map((e) => e.message)).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i}`));
  });

  it("drops a second delivery of a finished job without running it, publishing anything or charging again", async () => {
    const job = await enqueue(async () => ({ files: [] }));
    await terminalEvent(job.id);
    const before = { events: await readJobEvents(nc, job.id), balance: await balance(job) };

    // The broker hands the dispatch out again, as it does when an ack is lost; the claim refuses it.
    const { input } = await getJob(job);
    const dispatch = { job_id: job.id, user_id: job.owner.user_id, type: TYPE, input, dispatch: 1 };
    await js.publish(subjects.jobRun("image", TYPE), JSON.stringify(dispatch), { msgID: `${job.id}:again` });
    await untilQueueEmpty();

    expect(calls.get(job.id)).toBe(1);
    expect(await readJobEvents(nc, job.id)).toEqual(before.events);
    expect(await balance(job)).toEqual(before.balance);
    expect(await getJob(job)).toMatchObject({ status: "succeeded", attempts: 1 });
  });

  it("fails a job at once on a JobFailure, with its code, refunds it, and never runs it again", async () => {
    const job = await enqueue(async (ctx) => {
      await writeFile(join(ctx.tmpDir, "partial.bin"), "half");
      throw new JobFailure("INVALID_MEDIA", "not an image");
    });
    const { last } = await terminalEvent(job.id);
    expect(last).toMatchObject({ type: "error", status: "failed", error: { code: "INVALID_MEDIA", message: "not an image" } });
    expect(await getJob(job)).toMatchObject({ status: "failed", error: { code: "INVALID_MEDIA" }, credits: { state: "released" } });
    expect(await balance(job)).toEqual({ credits: CREDITS, reserved: 0 });
    await untilQueueEmpty();
    await sleep(config.ackWaitMs + 500);
    expect(calls.get(job.id)).toBe(1);
    expect(await tmpLeft()).toEqual([]);
  });

  it("hands the handler its owner's tier limits, and fails a job past them with LIMIT_EXCEEDED at once, refunded", async () => {
    const job = await enqueue(async (ctx) => {
      expect(ctx.limits).toEqual({ tier: "free", max_input_pixels: 8192 ** 2, max_output_pixels: 4096 ** 2, max_media_seconds: 600, max_segments: 3 });
      // What a worker measured of the real input, past what enqueue saw.
      checkLimits(ctx.limits, { input_pixels: 1, output_pixels: 16384 * 16384 });
      return { files: [] };
    });
    const { last } = await terminalEvent(job.id);
    expect(last).toMatchObject({ type: "error", status: "failed", error: { code: "LIMIT_EXCEEDED", message: expect.stringMatching(/268\.4 megapixels.*16\.8 megapixels.*free tier/) } });
    expect(await getJob(job)).toMatchObject({ status: "failed", attempts: 1, credits: { state: "released" } });
    expect(await balance(job)).toEqual({ credits: CREDITS, reserved: 0 });
    await sleep(config.ackWaitMs + 500);
    expect(calls.get(job.id)).toBe(1);
  });

  it("fails with INPUT_UNAVAILABLE when the owner deleted the input after queuing the job", async () => {
    const job = await enqueue(async (ctx) => {
      await client.call("storage", "deleteFile", { file_id: ctx.input.file_id }, { caller: { user_id: ctx.job.userId, role: "user", tier: "free" } });
      await ctx.fetchInput(ctx.input.file_id);
      return { files: [] };
    });
    const { last } = await terminalEvent(job.id);
    expect(last).toMatchObject({ type: "error", error: { code: "INPUT_UNAVAILABLE" } });
    expect(calls.get(job.id)).toBe(1);
    expect(await balance(job)).toEqual({ credits: CREDITS, reserved: 0 });
  });

  it("retries a transient error after a delay and tells the owner it is retrying", async () => {
    const job = await enqueue(async (ctx) => {
      if (calls.get(ctx.job.id) === 1) throw new Error("connection reset by peer");
      return { files: [], attempt: ctx.job.attempt };
    });
    const { events, last } = await terminalEvent(job.id);
    expect(last).toMatchObject({ type: "result", status: "succeeded", result: { attempt: 2 } });
    expect(calls.get(job.id)).toBe(2);
    // job-service puts it back queued and says when it runs again (ADR 039).
    expect(events).toContainEqual(expect.objectContaining({ type: "status", status: "queued", message: expect.stringMatching(/^attempt 1 of 2 failed \(WORKER_ERROR: processing failed\); retrying in/) }));
    expect(JSON.stringify(events)).not.toContain("connection reset");
    expect(await getJob(job)).toMatchObject({ status: "succeeded", attempts: 2, credits: { state: "captured" } });
    expect(await balance(job)).toEqual({ credits: CREDITS - 1, reserved: 0 });
    await untilQueueEmpty();
  });

  it("fails with WORKER_ERROR once every attempt has failed, without leaking the error", async () => {
    const job = await enqueue(async () => {
      throw new Error("secret internal detail");
    });
    const { last } = await terminalEvent(job.id);
    expect(last).toMatchObject({ type: "error", status: "failed", error: { code: "WORKER_ERROR" } });
    expect(JSON.stringify(last)).not.toContain("secret");
    expect(calls.get(job.id)).toBe(config.maxAttempts);
    const row = await getJob(job);
    expect(row).toMatchObject({ status: "failed", attempts: config.maxAttempts, error: { code: "WORKER_ERROR" } });
    expect(JSON.stringify(row)).not.toContain("secret");
    expect(await balance(job)).toEqual({ credits: CREDITS, reserved: 0 });
    await untilQueueEmpty();
    expect(await tmpLeft()).toEqual([]);
  });

  it("retries a model provider's outage, then fails with PROVIDER_ERROR saying why, refunded", async () => {
    const job = await enqueue(async () => {
      throw new RetryableFailure("PROVIDER_ERROR", "the model provider is unavailable: starting acme/x failed (HTTP 503)");
    });
    const { last } = await terminalEvent(job.id);
    expect(last).toMatchObject({
      type: "error",
      status: "failed",
      error: { code: "PROVIDER_ERROR", message: `the model provider is unavailable: starting acme/x failed (HTTP 503) (after ${config.maxAttempts} attempts)` },
    });
    expect(calls.get(job.id)).toBe(config.maxAttempts);
    expect(await balance(job)).toEqual({ credits: CREDITS, reserved: 0 });
    await untilQueueEmpty();
  });

  it("says why in the failure when storage could not be reached on every attempt", async () => {
    // A signed URL whose host refuses connections, as when the stack signed URLs for a port nobody serves.
    const closed = await freePort();
    const job = await enqueue((ctx) => downloadToFile(`http://127.0.0.1:${closed}/storage/blob/x`, join(ctx.tmpDir, "in"), ctx.signal).then(() => ({ files: [] })));
    const { last } = await terminalEvent(job.id);
    expect(last).toMatchObject({
      type: "error",
      status: "failed",
      error: { code: "WORKER_ERROR", message: `processing failed: could not download the input file from storage (connection refused) (after ${config.maxAttempts} attempts)` },
    });
    await untilQueueEmpty();
  });

  it("aborts the handler's signal within a second of a cancel, and publishes nothing itself", async () => {
    let abortedAt = 0;
    const job = await enqueue(async (ctx) => {
      await writeFile(join(ctx.tmpDir, "big.tmp"), "x");
      await once(ctx.signal, "abort");
      abortedAt = Date.now();
      throw ctx.signal.reason;
    });
    await vi.waitFor(() => expect(calls.get(job.id)).toBe(1), waiting);
    const canceledAt = Date.now();
    expect(await client.call("job", "cancel", { job_id: job.id }, { caller: job.owner })).toMatchObject({ credits_refunded: 1 });
    await vi.waitFor(() => expect(abortedAt).toBeGreaterThan(0), waiting);
    expect(abortedAt - canceledAt).toBeLessThan(1000);
    await untilQueueEmpty();
    await vi.waitFor(async () => expect(await tmpLeft()).toEqual([]), waiting);
    await sleep(config.ackWaitMs + 500);
    expect(calls.get(job.id)).toBe(1);
    // Queued and claimed, then job-service's own cancel: nothing from the worker after it.
    const events = await readJobEvents(nc, job.id);
    expect(events.map((e) => `${e.type}:${"status" in e ? e.status : ""}`)).toEqual(["status:queued", "status:running", "error:canceled"]);
    expect(await getJob(job)).toMatchObject({ status: "canceled", credits: { state: "released" } });
    expect(await balance(job)).toEqual({ credits: CREDITS, reserved: 0 });
  });

  it("throttles progress to a few events a second that never go backwards", async () => {
    const job = await enqueue(async (ctx) => {
      for (let i = 0; i <= 100; i++) {
        ctx.progress(i);
        ctx.progress(i - 5);
        await sleep(10);
      }
      return { files: [] };
    });
    const started = Date.now();
    const { events } = await terminalEvent(job.id);
    const progress = events.flatMap((e) => (e.type === "progress" ? [e.progress] : []));
    const seconds = (Date.now() - started) / 1000;
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.length).toBeLessThanOrEqual(Math.ceil(seconds * 4) + 1);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(new Set(progress).size).toBe(progress.length);
    expect(Math.max(...progress)).toBeLessThanOrEqual(100);
    expect(await getJob(job)).toMatchObject({ status: "succeeded", progress: 100 });
  });

  it("keeps a job that outlasts the ack wait from being redelivered while it runs", async () => {
    const job = await enqueue(async () => {
      await sleep(config.ackWaitMs * 3);
      return { files: [] };
    });
    const { events, last } = await terminalEvent(job.id);
    expect(last.type).toBe("result");
    expect(calls.get(job.id)).toBe(1);
    expect(claimsOf(events)).toHaveLength(1);
    expect(await getJob(job)).toMatchObject({ status: "succeeded", attempts: 1 });
  });

  it("runs at most WORKER_CONCURRENCY jobs at once and holds no more messages than that", async () => {
    let running = 0;
    let most = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const jobs = await Promise.all(
      Array.from({ length: 5 }, () =>
        enqueue(async () => {
          most = Math.max(most, ++running);
          await gate;
          running--;
          return { files: [] };
        }),
      ),
    );
    await vi.waitFor(() => expect(running).toBe(config.concurrency), waiting);
    await sleep(500);
    const info = await jsm.consumers.info("JOBS", "worker-image");
    expect(info.num_ack_pending).toBe(config.concurrency);
    expect(worker.load()).toEqual({ inFlight: config.concurrency, concurrency: config.concurrency, working: config.concurrency, draining: false, pulling: true });
    const statuses = await Promise.all(jobs.map(async (j) => (await getJob(j)).status));
    expect(statuses.filter((s) => s === "running")).toHaveLength(config.concurrency);
    release();
    for (const j of jobs) expect((await terminalEvent(j.id)).last.type).toBe("result");
    expect(most).toBe(config.concurrency);
  });

  it("terms a dispatch it cannot parse and carries on with the next", async () => {
    await js.publish(subjects.jobRun("image", TYPE), "{not json");
    const job = await enqueue(async () => ({ files: [] }));
    expect((await terminalEvent(job.id)).last.type).toBe("result");
    await untilQueueEmpty();
  });

  it("answers its health subject with nats and the consumer up, and its load", async () => {
    const conn = await nats.connect();
    serveWorkerHealth(conn, "worker-test", "image", worker, silentLogger());
    await conn.flush();
    const answer = (await nc.request("svc.worker-test.health", new TextEncoder().encode("{}"), { timeout: 2000 })).json();
    expect(answer).toMatchObject({
      ok: true,
      data: { status: "up", service: "worker-test", checks: { nats: { status: "up" }, jetstream: { status: "up" } }, details: { concurrency: 3, in_flight: 0 } },
    });
    const instances = [];
    for await (const m of await nc.requestMany("svc.worker-test.health.instances", "{}", { strategy: "timer", maxWait: 300 })) instances.push(m.json());
    expect(instances).toMatchObject([{ ok: true, data: { status: "up", id: expect.stringMatching(/^worker-test-/), pid: process.pid, load: { concurrency: 3, in_flight: 0 } } }]);
  });

  it("refuses to start without a handler for each of its queue's job types, or with a stranger's", async () => {
    const conn = await nats.connect();
    await expect(startWorker(conn, silentLogger(), { name: "w", queue: "image", handlers: { "image.resize": handler } }, config)).rejects.toThrow(
      /no handler for image.thumbnail/,
    );
    await expect(
      startWorker(conn, silentLogger(), { name: "w", queue: "image", handlers: { ...handlers, "audio.cleanup": async () => ({ files: [] }) } }, config),
    ).rejects.toThrow(/does not run: audio.cleanup/);
  });

  it("numbers a job's events past what its watchers saw when the broker lost them mid-run, so job-service still applies them", { timeout: 30_000 }, async () => {
    let start!: () => void;
    let end!: () => void;
    const started = new Promise<void>((r) => (start = r));
    const ended = new Promise<void>((r) => (end = r));
    const job = await enqueue(async (ctx) => {
      await started;
      await ctx.stage("fetch", async () => {});
      await ended;
      return { files: [] };
    });
    await vi.waitFor(() => expect(calls.get(job.id)).toBe(1), { timeout: 10_000 });
    // What a watcher saw: queued, then the claim's running. The worker has published nothing yet.
    expect((await readJobEvents(nc, job.id)).map((e) => e.seq)).toEqual([1, 2]);
    // What nats-server back with an empty store looks like: the stream made anew, with nothing in it.
    await jsm.streams.delete(streams.jobEvents.name);
    await ensureStreams(nc);

    start();
    await vi.waitFor(async () => expect((await getJob(job)).stages).toContainEqual({ name: "fetch", status: "done" }), { timeout: 20_000, interval: 100 });
    end();
    const { events } = await terminalEvent(job.id);
    expect(events.map((e) => [e.seq, e.type])).toEqual([
      // fetch:done alone: its running was replaced before it went out (ADR 028).
      [3, "stage"],
      [4, "result"],
    ]);
    expect(await getJob(job)).toMatchObject({ status: "succeeded" });
  });

  // Last: it stops the shared worker.
  it("on stop finishes the jobs it can and hands back the ones that outlast the grace period", async () => {
    const quick = await enqueue(async () => {
      await sleep(300);
      return { files: [] };
    });
    const stubborn = await enqueue(async (ctx) => {
      if (calls.get(ctx.job.id) === 1) {
        await once(ctx.signal, "abort");
        throw ctx.signal.reason;
      }
      return { files: [], second: true };
    });
    await vi.waitFor(() => expect([calls.get(quick.id), calls.get(stubborn.id)]).toEqual([1, 1]), waiting);
    await worker.stop({ graceMs: 1000 });
    expect((await terminalEvent(quick.id)).last.type).toBe("result");
    expect((await readJobEvents(nc, stubborn.id)).filter(isTerminalEvent)).toEqual([]);
    expect(await queued()).toBe(1);
    expect(await getJob(stubborn)).toMatchObject({ status: "running", credits: { state: "reserved" } });

    const next = await startWorker(await nats.connect(), silentLogger(), { name: "worker-next", queue: "image", handlers }, config);
    try {
      const { events, last } = await terminalEvent(stubborn.id);
      expect(last).toMatchObject({ type: "result", result: { second: true } });
      expect(claimsOf(events)).toEqual([`attempt 1 on worker-test-${process.pid}`, `attempt 2 on worker-next-${process.pid}`]);
      expect(await balance(stubborn)).toEqual({ credits: CREDITS - 1, reserved: 0 });
    } finally {
      await next.stop({ graceMs: 0 });
    }
  });

  it("stops within the grace period even when every slot holds a long job, and hands that job back", async () => {
    const single = await startWorker(await nats.connect(), silentLogger(), { name: "worker-single", queue: "image", handlers }, { ...config, concurrency: 1 });
    const long = await enqueue(async (ctx) => {
      if (calls.get(ctx.job.id) === 1) await sleep(20_000, undefined, { signal: ctx.signal });
      return { files: [], second: true };
    });
    await vi.waitFor(() => expect(calls.get(long.id)).toBe(1), waiting);
    const started = Date.now();
    await single.stop({ graceMs: 500 });
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await readJobEvents(nc, long.id)).filter(isTerminalEvent)).toEqual([]);
    expect(await queued()).toBe(1);

    const next = await startWorker(await nats.connect(), silentLogger(), { name: "worker-after", queue: "image", handlers }, config);
    try {
      expect((await terminalEvent(long.id)).last).toMatchObject({ type: "result", result: { second: true } });
    } finally {
      await next.stop({ graceMs: 0 });
    }
  });

  it("claims and starts its next job while the previous one uploads, yet works on one job at a time with concurrency 1", async () => {
    const single = await startWorker(await nats.connect(), silentLogger(), { name: "worker-overlap", queue: "image", handlers }, { ...config, concurrency: 1 });
    try {
      let working = 0;
      let most = 0;
      let secondStarted!: () => void;
      const started = new Promise<void>((resolve) => (secondStarted = resolve));
      const first = await enqueue(async (ctx) => {
        most = Math.max(most, ++working);
        const input = await ctx.fetchInput(ctx.input.file_id);
        const output = ctx.prepareOutput("first.png", "image/png");
        working--;
        const uploaded = output.upload(input.path);
        // Were the slot still taken while this uploads, the next job would never start and this one never end.
        await started;
        return { files: [await uploaded] };
      });
      const second = await enqueue(async () => {
        most = Math.max(most, ++working);
        secondStarted();
        working--;
        return { files: [] };
      });
      const [a, b] = await Promise.all([terminalEvent(first.id), terminalEvent(second.id)]);
      expect(a.last).toMatchObject({ type: "result", status: "succeeded", result: { files: [{ filename: "first.png", content_type: "image/png", size: PIXEL.length }] } });
      expect(b.last).toMatchObject({ type: "result", status: "succeeded" });
      expect([claimsOf(a.events), claimsOf(b.events)]).toEqual([[`attempt 1 on worker-overlap-${process.pid}`], [`attempt 1 on worker-overlap-${process.pid}`]]);
      expect(most).toBe(1);
    } finally {
      await single.stop({ graceMs: 0 });
    }
  });

  it("starts its next job while one job uploads and another waits on job-service to record its end, with concurrency 1", { timeout: 60_000 }, async () => {
    // Stopped already when the whole file runs; run alone, the rig's worker would take these jobs.
    await worker.stop({ graceMs: 0 });
    // The worker's connection holds every finish it sends until told, as a busy job-service would.
    const conn = await nats.connect();
    const finishSubject = subjects.rpc("job", "finish");
    const heldFinishes: (() => void)[] = [];
    let holding = true;
    const holdingFinishes = new Proxy(conn, {
      get(target, key) {
        if (key === "publish") {
          return (...args: Parameters<NatsConnection["publish"]>) => {
            if (holding && args[0] === finishSubject) heldFinishes.push(() => target.publish(...args));
            else target.publish(...args);
          };
        }
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    // A long RPC timeout: the held finish must still be waiting, not given up, when the third job is pulled.
    const single = await startWorker(holdingFinishes, silentLogger(), { name: "worker-reporting", queue: "image", handlers }, { ...config, concurrency: 1, rpcTimeoutMs: 30_000 });
    let thirdStarted!: () => void;
    const started = new Promise<void>((resolve) => (thirdStarted = resolve));
    try {
      let finishesHeldAtThird = 0;
      const uploading = await enqueue(async (ctx) => {
        const input = await ctx.fetchInput(ctx.input.file_id);
        const uploaded = ctx.prepareOutput("first.png", "image/png").upload(input.path);
        await started;
        return { files: [await uploaded] };
      });
      const reporting = await enqueue(async () => ({ files: [] }));
      const third = await enqueue(async () => {
        finishesHeldAtThird = heldFinishes.length;
        thirdStarted();
        return { files: [] };
      });
      await vi.waitFor(() => expect(calls.get(third.id)).toBe(1), { timeout: 15_000, interval: 50 });
      expect(finishesHeldAtThird).toBe(1);
      holding = false;
      for (const send of heldFinishes.splice(0)) send();
      const ends = await Promise.all([uploading, reporting, third].map((j) => terminalEvent(j.id)));
      for (const { events, last } of ends) {
        expect(last).toMatchObject({ type: "result", status: "succeeded" });
        expect(claimsOf(events)).toEqual([`attempt 1 on worker-reporting-${process.pid}`]);
      }
      expect([calls.get(uploading.id), calls.get(reporting.id), calls.get(third.id)]).toEqual([1, 1, 1]);
    } finally {
      holding = false;
      for (const send of heldFinishes.splice(0)) send();
      thirdStarted();
      await single.stop({ graceMs: 0 });
    }
  });
});
