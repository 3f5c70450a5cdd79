import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AppError, isTerminalEvent, subjects, type ClaimReply, type FileObject, type JobEvent } from "@cutroom/contracts";
import { createEventPublisher, readJobEvents, serveRpc, type NatsConnection, type RpcHandlers } from "@cutroom/runtime";
import { silentLogger, startTestNats } from "@cutroom/testing";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { serveWorkerHealth } from "./health.ts";
import { JobFailure } from "./job-failure.ts";
import type { JobContext, JobOutput } from "./types.ts";
import { startWorker, type Worker, type WorkerConfig } from "./worker.ts";

/*
 * The consumer loop on a real nats-server. job-service's claim and storage-service's signed URLs
 * were still being written, so `svc.job.claim` and the three worker-facing storage methods are
 * answered below by small stand-ins that keep to the contracts, with a plain HTTP server for the URLs.
 */

type Behaviour = (ctx: JobContext<{ file_id: string }>) => Promise<JobOutput>;

const TYPE = "image.resize";
const owner = randomUUID();
const config: WorkerConfig = { concurrency: 3, ackWaitMs: 1500, maxAttempts: 2, tmpDir: "", rpcTimeoutMs: 2000 };

let nats: Awaited<ReturnType<typeof startTestNats>>;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let worker: Worker;
let stand: Awaited<ReturnType<typeof serveStandIns>>;

const behaviours = new Map<string, Behaviour>();
const calls = new Map<string, number>();
const handler = async (ctx: JobContext<{ file_id: string }>) => {
  calls.set(ctx.job.id, (calls.get(ctx.job.id) ?? 0) + 1);
  return behaviours.get(ctx.job.id)!(ctx);
};
const handlers = { "image.resize": handler, "image.thumbnail": handler };

beforeAll(async () => {
  config.tmpDir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "worker-tmp-"));
  nats = await startTestNats();
  nc = await nats.connect();
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  stand = await serveStandIns(await nats.connect());
  worker = await startWorker(await nats.connect(), silentLogger(), { name: "worker-test", queue: "image", handlers }, config);
});
afterAll(async () => {
  await worker?.stop({ graceMs: 0 });
  stand?.http.close();
  await nats?.stop();
  await rm(config.tmpDir, { recursive: true, force: true });
});

/** Publishes a dispatch the way job-service does; the stand-in claim answers for it. */
async function enqueue(behaviour: Behaviour, opts: { refuse?: string; fileId?: string } = {}): Promise<string> {
  const jobId = randomUUID();
  const input = { file_id: opts.fileId ?? stand.inputFileId, width: 64 };
  stand.jobs.set(jobId, { input, refuse: opts.refuse });
  behaviours.set(jobId, behaviour);
  const dispatch = { job_id: jobId, user_id: owner, type: TYPE, input, dispatch: 1 };
  await js.publish(subjects.jobRun("image", TYPE), JSON.stringify(dispatch), { msgID: `${jobId}:1` });
  return jobId;
}

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

const queued = async () => (await jsm.streams.info("JOBS")).state.messages;
const untilQueueEmpty = () => vi.waitFor(async () => expect(await queued()).toBe(0), { timeout: 10_000, interval: 100 });
const tmpLeft = () => readdir(config.tmpDir);

describe("worker runtime on a real nats-server", () => {
  it("fetches the input, uploads the output, reports stages and the result, then acks", async () => {
    const jobId = await enqueue(async (ctx) => {
      const input = await ctx.stage("fetch", () => ctx.fetchInput(ctx.input.file_id));
      ctx.log.info("fetched");
      const out = join(ctx.tmpDir, "out.txt");
      await ctx.stage("process", async () => writeFile(out, (await readFile(input.path, "utf8")).toUpperCase()));
      const file = await ctx.stage("upload", () => ctx.uploadOutput(out, "out.txt", "text/plain"));
      return { files: [file], letters: input.size };
    });

    const { events, last } = await terminalEvent(jobId);
    expect(last).toMatchObject({ type: "result", status: "succeeded", result: { letters: 11, files: [{ filename: "out.txt", content_type: "text/plain", size: 11 }] } });
    const fileId = (last as Extract<JobEvent, { type: "result" }>).result.files[0]!.file_id;
    expect(stand.objects.get(fileId)?.toString()).toBe("HELLO PIXEL");
    expect(stand.uploadHeaders.get(fileId)?.["content-length"]).toBe("11");
    expect(events.filter((e) => e.type === "stage").map((e) => `${e.stage}:${e.status}`)).toEqual([
      "fetch:running",
      "fetch:done",
      "process:running",
      "process:done",
      "upload:running",
      "upload:done",
    ]);
    expect(events).toContainEqual(expect.objectContaining({ type: "log", message: "fetched" }));
    expect(stand.claims.filter((c) => c.job_id === jobId)).toEqual([{ job_id: jobId, dispatch: 1, worker: `worker-test-${process.pid}` }]);
    await untilQueueEmpty();
    expect(await tmpLeft()).toEqual([]);
  });

  it("drops a delivery the claim refuses without running the handler or publishing anything", async () => {
    const jobId = await enqueue(async () => ({ files: [] }), { refuse: "job already finished" });
    await vi.waitFor(() => expect(stand.claims.some((c) => c.job_id === jobId)).toBe(true));
    await untilQueueEmpty();
    expect(calls.get(jobId)).toBeUndefined();
    expect(await readJobEvents(nc, jobId)).toEqual([]);
  });

  it("fails a job at once on a JobFailure, with its code, and never runs it again", async () => {
    const jobId = await enqueue(async (ctx) => {
      await writeFile(join(ctx.tmpDir, "partial.bin"), "half");
      throw new JobFailure("INVALID_MEDIA", "not an image");
    });
    const { last } = await terminalEvent(jobId);
    expect(last).toMatchObject({ type: "error", status: "failed", error: { code: "INVALID_MEDIA", message: "not an image" } });
    await untilQueueEmpty();
    await sleep(config.ackWaitMs + 500);
    expect(calls.get(jobId)).toBe(1);
    expect(await tmpLeft()).toEqual([]);
  });

  it("fails with INPUT_UNAVAILABLE when storage no longer has the input file", async () => {
    const jobId = await enqueue(async (ctx) => {
      await ctx.fetchInput(ctx.input.file_id);
      return { files: [] };
    }, { fileId: randomUUID() });
    const { last } = await terminalEvent(jobId);
    expect(last).toMatchObject({ type: "error", error: { code: "INPUT_UNAVAILABLE" } });
    expect(calls.get(jobId)).toBe(1);
  });

  it("retries a transient error after a delay and tells the owner it is retrying", async () => {
    const jobId = await enqueue(async (ctx) => {
      if (calls.get(ctx.job.id) === 1) throw new Error("connection reset by peer");
      return { files: [], attempt: ctx.job.attempt };
    });
    const { events, last } = await terminalEvent(jobId);
    expect(last).toMatchObject({ type: "result", status: "succeeded" });
    expect(calls.get(jobId)).toBe(2);
    expect(events).toContainEqual(expect.objectContaining({ type: "log", level: "warn", message: expect.stringMatching(/attempt 1 of 2 failed; retrying/) }));
    expect(JSON.stringify(events)).not.toContain("connection reset");
    await untilQueueEmpty();
  });

  it("fails with WORKER_ERROR once every attempt has failed, without leaking the error", async () => {
    const jobId = await enqueue(async () => {
      throw new Error("secret internal detail");
    });
    const { last } = await terminalEvent(jobId);
    expect(last).toMatchObject({ type: "error", status: "failed", error: { code: "WORKER_ERROR" } });
    expect(JSON.stringify(last)).not.toContain("secret");
    expect(calls.get(jobId)).toBe(config.maxAttempts);
    await untilQueueEmpty();
    expect(await tmpLeft()).toEqual([]);
  });

  it("aborts the handler's signal within a second of a cancel, and publishes nothing itself", async () => {
    let abortedAt = 0;
    const jobId = await enqueue(async (ctx) => {
      await writeFile(join(ctx.tmpDir, "big.tmp"), "x");
      await once(ctx.signal, "abort");
      abortedAt = Date.now();
      throw ctx.signal.reason;
    });
    await vi.waitFor(() => expect(calls.get(jobId)).toBe(1));
    const canceledAt = Date.now();
    nc.publish(subjects.jobCancel(jobId));
    await vi.waitFor(() => expect(abortedAt).toBeGreaterThan(0));
    expect(abortedAt - canceledAt).toBeLessThan(1000);
    await untilQueueEmpty();
    await vi.waitFor(async () => expect(await tmpLeft()).toEqual([]));
    await sleep(config.ackWaitMs + 500);
    expect(calls.get(jobId)).toBe(1);
    expect((await readJobEvents(nc, jobId)).filter(isTerminalEvent)).toEqual([]);
  });

  it("throttles progress to a few events a second that never go backwards", async () => {
    const jobId = await enqueue(async (ctx) => {
      for (let i = 0; i <= 100; i++) {
        ctx.progress(i);
        ctx.progress(i - 5);
        await sleep(10);
      }
      return { files: [] };
    });
    const started = Date.now();
    const { events } = await terminalEvent(jobId);
    const progress = events.flatMap((e) => (e.type === "progress" ? [e.progress] : []));
    const seconds = (Date.now() - started) / 1000;
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.length).toBeLessThanOrEqual(Math.ceil(seconds * 4) + 1);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(new Set(progress).size).toBe(progress.length);
    expect(Math.max(...progress)).toBeLessThanOrEqual(100);
  });

  it("keeps a job that outlasts the ack wait from being redelivered while it runs", async () => {
    const jobId = await enqueue(async () => {
      await sleep(config.ackWaitMs * 3);
      return { files: [] };
    });
    const { last } = await terminalEvent(jobId);
    expect(last.type).toBe("result");
    expect(calls.get(jobId)).toBe(1);
    expect(stand.claims.filter((c) => c.job_id === jobId)).toHaveLength(1);
  });

  it("runs at most WORKER_CONCURRENCY jobs at once and holds no more messages than that", async () => {
    let running = 0;
    let most = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const ids = await Promise.all(
      Array.from({ length: 5 }, () =>
        enqueue(async () => {
          most = Math.max(most, ++running);
          await gate;
          running--;
          return { files: [] };
        }),
      ),
    );
    await vi.waitFor(() => expect(running).toBe(config.concurrency));
    await sleep(500);
    const info = await jsm.consumers.info("JOBS", "worker-image");
    expect(info.num_ack_pending).toBe(config.concurrency);
    expect(worker.load()).toEqual({ inFlight: config.concurrency, concurrency: config.concurrency });
    release();
    for (const id of ids) expect((await terminalEvent(id)).last.type).toBe("result");
    expect(most).toBe(config.concurrency);
  });

  it("terms a dispatch it cannot parse and carries on with the next", async () => {
    await js.publish(subjects.jobRun("image", TYPE), "{not json");
    const jobId = await enqueue(async () => ({ files: [] }));
    expect((await terminalEvent(jobId)).last.type).toBe("result");
    await untilQueueEmpty();
  });

  it("answers its health subject with nats and the consumer up, and its load", async () => {
    serveWorkerHealth(await nats.connect(), "worker-test", "image", worker, silentLogger());
    const answer = (await nc.request("svc.worker-test.health", new TextEncoder().encode("{}"), { timeout: 2000 })).json();
    expect(answer).toMatchObject({
      ok: true,
      data: { status: "up", service: "worker-test", checks: { nats: { status: "up" }, jetstream: { status: "up" } }, details: { concurrency: 3, in_flight: 0 } },
    });
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
    await vi.waitFor(() => expect([calls.get(quick), calls.get(stubborn)]).toEqual([1, 1]));
    await worker.stop({ graceMs: 1000 });
    expect((await terminalEvent(quick)).last.type).toBe("result");
    expect((await readJobEvents(nc, stubborn)).filter(isTerminalEvent)).toEqual([]);
    expect(await queued()).toBe(1);

    const next = await startWorker(await nats.connect(), silentLogger(), { name: "worker-next", queue: "image", handlers }, config);
    try {
      expect((await terminalEvent(stubborn)).last).toMatchObject({ type: "result", result: { second: true } });
    } finally {
      await next.stop({ graceMs: 0 });
    }
  });
});

/** job-service's claim and storage-service's worker methods, as the contracts describe them. */
async function serveStandIns(conn: NatsConnection) {
  const jobs = new Map<string, { input: Record<string, unknown>; refuse?: string }>();
  const claims: Array<{ job_id: string; dispatch: number; worker: string }> = [];
  const files = new Map<string, FileObject>();
  const objects = new Map<string, Buffer>();
  const uploadHeaders = new Map<string, IncomingMessage["headers"]>();
  const log = silentLogger();
  const events = createEventPublisher(conn);

  const http: Server = createServer(async (req, res) => {
    const id = req.url!.slice("/objects/".length);
    if (req.method === "GET" && objects.has(id)) return res.end(objects.get(id));
    if (req.method === "PUT") {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      objects.set(id, Buffer.concat(chunks));
      uploadHeaders.set(id, req.headers);
      return res.end();
    }
    res.statusCode = 404;
    res.end();
  });
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  const base = `http://127.0.0.1:${(http.address() as { port: number }).port}/objects`;

  const fileObject = (id: string, filename: string, contentType: string, size: number, jobId: string | null): FileObject => ({
    id,
    filename,
    content_type: contentType,
    kind: "other",
    size,
    folder: jobId ? "output" : "input",
    status: "ready",
    project_id: null,
    job_id: jobId,
    created_at: new Date().toISOString(),
  });
  const inputFileId = randomUUID();
  files.set(inputFileId, fileObject(inputFileId, "hello.txt", "text/plain", 11, null));
  objects.set(inputFileId, Buffer.from("hello pixel"));

  const expires_at = () => new Date(Date.now() + 60_000).toISOString();
  const storage: Partial<RpcHandlers<"storage">> = {
    inputUrl: async ({ owner_id, file_id }) => {
      const f = files.get(file_id);
      if (!f || owner_id !== owner) throw new AppError("NOT_FOUND", "input file not found");
      return { url: `${base}/${file_id}`, expires_at: expires_at(), filename: f.filename, content_type: f.content_type, size: f.size };
    },
    createOutput: async ({ job_id, filename, content_type }) => {
      const id = randomUUID();
      files.set(id, { ...fileObject(id, filename, content_type, 0, job_id), status: "pending" });
      return { file_id: id, upload_url: `${base}/${id}`, method: "PUT", headers: { "content-type": content_type }, expires_at: expires_at() };
    },
    confirmOutput: async ({ file_id }) => {
      const f = files.get(file_id);
      const bytes = objects.get(file_id);
      if (!f || !bytes) throw new AppError("INVALID_STATE", "nothing uploaded yet");
      return { ...f, status: "ready", size: bytes.length };
    },
  };
  const job: Partial<RpcHandlers<"job">> = {
    claim: async (body): Promise<ClaimReply> => {
      claims.push(body);
      const j = jobs.get(body.job_id);
      if (!j || j.refuse) return { run: false, reason: j?.refuse ?? "unknown job" };
      const attempt = claims.filter((c) => c.job_id === body.job_id).length;
      return { run: true, job: { id: body.job_id, user_id: owner, type: TYPE, input: j.input, attempt } };
    },
    finish: async ({ job_id, outcome }) => {
      const event = outcome.status === "succeeded" ? { type: "result" as const, ...outcome } : { type: "error" as const, ...outcome };
      await events.publish(job_id, event, { unlessEnded: true });
      return { applied: true, status: outcome.status };
    },
  };
  serveRpc(conn, "storage", storage as RpcHandlers<"storage">, log);
  serveRpc(conn, "job", job as RpcHandlers<"job">, log);
  return { http, jobs, claims, objects, uploadHeaders, inputFileId };
}
