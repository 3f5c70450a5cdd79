import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { AppError, streams, subjects, type Caller, type Job, type JobEventInput } from "@cutroom/contracts";
import { createNatsLogins, freePort, natsConnectOptions, startNats, stopChild, waitFor, type NatsLoginName } from "@cutroom/devstack";
import { connectNats, createEventPublisher, createLogger, createStorageReplicas, ensureStreams, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { buildApp } from "../app.ts";
import type { TokenVerifier } from "../plugins/auth.ts";
import { createEventHub } from "../realtime/event-hub.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const caller: Caller = { user_id: randomUUID(), role: "user", tier: "free" };
const canceled: JobEventInput = { type: "error", status: "canceled", error: { code: "CANCELED", message: "canceled by the user" } };

/** A nats-server with the stack's per-app users, which can be restarted with or without its store. */
async function startNatsWithUsers() {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "nats-rt-"));
  const storeDir = join(dir, "store");
  const logins = createNatsLogins();
  const port = await freePort();
  let server = await startNats({ storeDir, port, logins });
  return {
    url: server.url,
    /** Connects as one app's user, as that app does. */
    as: (name: NatsLoginName) => connect({ ...natsConnectOptions(server.url, logins, name), maxReconnectAttempts: -1, reconnectTimeWait: 100 }),
    login: (name: NatsLoginName) => ({ NATS_URL: server.url, NATS_USER: logins[name].user, NATS_PASSWORD: logins[name].password }),
    restart: async (opts: { loseStore: boolean }) => {
      await server.stop();
      if (opts.loseStore) rmSync(storeDir, { recursive: true, force: true });
      server = await startNats({ storeDir, port, logins });
    },
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The gateway as server.ts builds it (its own NATS user, one event hub), with job-service and auth-service stood in for. */
async function startGateway(target: Parameters<typeof connectNats>[0], jobs: Map<string, Job>, opts: { maxConnectionsPerUser?: number } = {}) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger("gateway", "info", destination);
  const nc = await connectNats(target, "gateway", log);
  const hub = createEventHub(nc, log, { retryMs: 100 });
  // `hold`: while set, job lookups wait for it instead of the usual few milliseconds.
  const calls = { jobGet: 0, hold: undefined as Promise<void> | undefined };
  const rpc = {
    async call(service: string, method: string, body: { job_id: string }) {
      if (service !== "job" || method !== "get") throw new Error(`unexpected call ${service}.${method}`);
      calls.jobGet++;
      // A lookup takes a round trip to job-service and Postgres.
      await (calls.hold ?? sleep(5));
      const job = jobs.get(body.job_id);
      if (!job) throw new AppError("NOT_FOUND", "job not found");
      return job;
    },
  } as unknown as RpcClient;
  const verifier = { verify: async () => caller, refresh: async () => {}, userChanged: async () => {} } as unknown as TokenVerifier;
  const app = await buildApp({ rpc, nc, verifier, hub, log, storage: createStorageReplicas(["http://127.0.0.1:9"]), maxConnectionsPerUser: opts.maxConnectionsPerUser });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address() as { port: number };
  return {
    app,
    hub,
    nc,
    lines,
    calls,
    url: `http://127.0.0.1:${address.port}`,
    close: async () => {
      await app.close();
      await hub.close();
      await nc.close();
    },
  };
}

function runningJob(jobs: Map<string, Job>): string {
  const id = randomUUID();
  const now = new Date().toISOString();
  jobs.set(id, {
    id,
    type: "image.resize",
    status: "running",
    progress: 0,
    stage: null,
    stages: [],
    input: {},
    result: null,
    error: null,
    credits: { amount: 1, state: "reserved" },
    attempts: 1,
    provider_cost_usd: null,
    project_id: null,
    queue_position: null,
    queue_reason: null,
    eta_seconds: null,
    display_name: null,
    metadata: {},
    max_attempts: 3,
    next_attempt_at: null,
    priority: "normal",
    start_by: null,
    timeout_s: null,
    created_at: now,
    updated_at: now,
    started_at: now,
    completed_at: null,
  });
  return id;
}

/** `WS /ws/jobs/{id}`: every message, the snapshot's arrival, and the close. */
function watchWs(baseUrl: string, jobId: string, opts: { since?: number; requestId?: string } = {}) {
  const url = new URL(`/ws/jobs/${jobId}`, baseUrl.replace(/^http/, "ws"));
  if (opts.since !== undefined) url.searchParams.set("since", String(opts.since));
  const ws = new WebSocket(url, { headers: { authorization: "Bearer t", ...(opts.requestId ? { "x-request-id": opts.requestId } : {}) } });
  const messages: any[] = [];
  let snapshotSeen = () => {};
  const snapshot = new Promise<void>((r) => (snapshotSeen = r));
  ws.on("message", (data) => {
    const m = JSON.parse(data.toString());
    messages.push(m);
    if (m.type === "snapshot") snapshotSeen();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no close; got ${JSON.stringify(messages)}`)), 20_000);
    ws.on("close", (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
    ws.on("error", reject);
  });
  closed.catch(() => {});
  return { messages, snapshot, closed, events: () => messages.filter((m) => typeof m.seq === "number") };
}

type SseBlock = Record<string, string>;
const parseSse = (text: string): SseBlock[] =>
  text
    .split("\n\n")
    .filter((b) => b && !b.startsWith(":"))
    .map((block) => Object.fromEntries(block.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)])));

/** `GET /api/v1/jobs/{id}/events`, read as it streams: its blocks, the snapshot's arrival, and the end. */
async function watchSse(baseUrl: string, jobId: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${baseUrl}/api/v1/jobs/${jobId}/events`, { headers: { authorization: "Bearer t", ...headers } });
  let text = "";
  let snapshotSeen = () => {};
  const snapshot = new Promise<void>((r) => (snapshotSeen = r));
  const ended = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      if (text.includes("event: snapshot")) snapshotSeen();
    }
    return parseSse(text);
  })();
  const timeout = sleep(20_000).then(() => {
    throw new Error(`the event stream did not end; got ${text}`);
  });
  return { res, snapshot, ended: Promise.race([ended, timeout]) };
}

describe("live job events reach clients only once stored, in stored order", () => {
  let nats: Awaited<ReturnType<typeof startNatsWithUsers>>;
  let admin: NatsConnection;
  let jobService: NatsConnection;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  const jobs = new Map<string, Job>();

  beforeAll(async () => {
    nats = await startNatsWithUsers();
    admin = await nats.as("admin");
    // job-service owns the streams and publishes events, as its own NATS user.
    jobService = await nats.as("job-service");
    await ensureStreams(jobService);
    gateway = await startGateway(nats.login("gateway"), jobs, { maxConnectionsPerUser: 1000 });
    await gateway.hub.ready;
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.allSettled([admin?.close(), jobService?.close()]);
    await nats?.stop();
  });

  it("never shows a watcher an event the stream refused (a wrong expected sequence)", async () => {
    const jobId = runningJob(jobs);
    const publisher = createEventPublisher(jobService);
    const ws = watchWs(gateway.url, jobId);
    const sse = await watchSse(gateway.url, jobId);
    await Promise.all([ws.snapshot, sse.snapshot]);

    await publisher.publish(jobId, { type: "progress", progress: 10 });
    // A stale publisher claims seq 2: JetStream refuses it, yet core NATS still carries it to subscribers.
    const refused = { job_id: jobId, seq: 2, timestamp: new Date().toISOString(), type: "log", level: "error", message: "never stored" };
    await expect(jetstream(jobService).publish(subjects.jobEvents(jobId), JSON.stringify(refused), { expect: { lastSubjectSequence: 999 } })).rejects.toThrow(/wrong last sequence/i);
    await publisher.publish(jobId, { type: "progress", progress: 50 });
    await publisher.publish(jobId, canceled);

    expect(await ws.closed).toMatchObject({ code: 1000 });
    expect(ws.events().map((e) => [e.seq, e.type])).toEqual([
      [1, "progress"],
      [2, "progress"],
      [3, "error"],
    ]);
    const blocks = (await sse.ended).filter((b) => b.id);
    expect(blocks.map((b) => [Number(b.id), b.event])).toEqual([
      [1, "progress"],
      [2, "progress"],
      [3, "error"],
    ]);
    expect(JSON.stringify([ws.messages, blocks])).not.toContain("never stored");
  });

  it("resumes with `since` without creating a consumer, and returns the stored events after it", async () => {
    const jobId = runningJob(jobs);
    const publisher = createEventPublisher(jobService);
    for (let i = 1; i <= 3; i++) await publisher.publish(jobId, { type: "progress", progress: i * 10 });
    // Not an event: replay passes over it.
    jobService.publish(subjects.jobEvents(jobId), "not json");
    await publisher.publish(jobId, { type: "progress", progress: 80 });
    await publisher.publish(jobId, canceled);
    jobs.set(jobId, { ...jobs.get(jobId)!, status: "canceled" });

    const jsm = await jetstreamManager(admin);
    const consumers = async () => (await jsm.streams.info(streams.jobEvents.name)).state.consumer_count;
    const before = await consumers();
    for (let i = 0; i < 10; i++) {
      const sse = await watchSse(gateway.url, jobId, { "last-event-id": "2" });
      expect(sse.res.status).toBe(200);
      expect((await sse.ended).filter((b) => b.id).map((b) => Number(b.id))).toEqual([3, 4, 5]);
      const ws = watchWs(gateway.url, jobId, { since: 2 });
      expect(await ws.closed).toMatchObject({ code: 1000 });
      expect(ws.events().map((e) => e.seq)).toEqual([3, 4, 5]);
    }
    expect(await consumers()).toBe(before);
  });

  it("gives each of many clients opening one job at once its snapshot, then every event from its first on, without a gap, while events keep coming", async () => {
    const jobId = runningJob(jobs);
    const publisher = createEventPublisher(jobService);
    const CLIENTS = 300;
    const lookupsBefore = gateway.calls.jobGet;
    let publishing = true;
    let published = 0;
    const publishes = (async () => {
      while (publishing) {
        await publisher.publish(jobId, { type: "progress", progress: ++published % 100 });
        await sleep(2);
      }
    })();
    const watchers = Array.from({ length: CLIENTS }, () => watchWs(gateway.url, jobId));
    await Promise.all(watchers.map((w) => w.snapshot));
    // The last client to connect sees a few live events too.
    const target = published + 5;
    await waitFor("events after every client connected", async () => watchers.every((w) => w.events().some((e) => e.seq >= target)));
    publishing = false;
    await publishes;
    await publisher.publish(jobId, canceled);
    const total = published + 1;
    for (const w of watchers) {
      expect(await w.closed).toMatchObject({ code: 1000 });
      expect(w.messages[0]).toMatchObject({ type: "snapshot", job: { id: jobId } });
      const seqs = w.events().map((e) => e.seq);
      expect(seqs.at(-1)).toBe(total);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    }
    // Clients opening the job together shared job lookups.
    expect(gateway.calls.jobGet - lookupsBefore).toBeLessThan(CLIENTS);
  }, 60_000);

  it("serves many clients opening a job whose events are quiet from one job lookup, and still leaves no gap", async () => {
    const jobId = runningJob(jobs);
    const publisher = createEventPublisher(jobService);
    await publisher.publish(jobId, { type: "progress", progress: 10 });
    const lookupsBefore = gateway.calls.jobGet;
    const watchersBefore = gateway.hub.watchers();
    let release = () => {};
    gateway.calls.hold = new Promise<void>((r) => (release = r));
    const watchers = Array.from({ length: 50 }, () => watchWs(gateway.url, jobId));
    // Every client listens, then asks, while the first lookup is still under way.
    await waitFor("every client to be waiting for its snapshot", async () => gateway.hub.watchers() === watchersBefore + watchers.length);
    gateway.calls.hold = undefined;
    release();
    await Promise.all(watchers.map((w) => w.snapshot));
    expect(gateway.calls.jobGet - lookupsBefore).toBe(1);
    await publisher.publish(jobId, canceled);
    for (const w of watchers) {
      expect(await w.closed).toMatchObject({ code: 1000 });
      expect(w.events().map((e) => e.seq)).toEqual([2]);
    }
  });

  it("keeps delivering after the stream is deleted and made again, and after nats-server comes back with an empty store", async () => {
    // The stream's sequence moves on first, so that a consumer resuming at the old sequence would skip the new stream's first messages.
    const other = runningJob(jobs);
    const warmup = createEventPublisher(jobService);
    for (let i = 0; i < 5; i++) await warmup.publish(other, { type: "progress", progress: i });

    const first = runningJob(jobs);
    const ws = watchWs(gateway.url, first);
    await ws.snapshot;
    const jsm = await jetstreamManager(admin);
    await jsm.streams.delete(streams.jobEvents.name);
    await ensureStreams(jobService);
    // A new publisher: the old one remembers the deleted stream's sequences.
    const afterDelete = createEventPublisher(jobService);
    await afterDelete.publish(first, { type: "progress", progress: 40 });
    await afterDelete.publish(first, canceled);
    expect(await ws.closed).toMatchObject({ code: 1000 });
    expect(ws.events().map((e) => e.seq)).toEqual([1, 2]);

    const second = runningJob(jobs);
    const ws2 = watchWs(gateway.url, second);
    await ws2.snapshot;
    for (let i = 0; i < 5; i++) await afterDelete.publish(other, { type: "progress", progress: 10 + i });
    await nats.restart({ loseStore: true });
    // job-service makes the streams again once NATS is back.
    await waitFor("JetStream after the restart", async () => ensureStreams(jobService).then(() => true, () => false));
    const afterRestart = createEventPublisher(jobService);
    await afterRestart.publish(second, { type: "progress", progress: 70 });
    await afterRestart.publish(second, canceled);
    expect(await ws2.closed).toMatchObject({ code: 1000 });
    expect(ws2.events().map((e) => [e.seq, e.type])).toEqual([
      [1, "progress"],
      [2, "error"],
    ]);
    expect(gateway.lines.some((l) => l.msg === "the job events stream was made anew: following it from its start")).toBe(true);
  }, 60_000);

  it("brings a watcher of a running job its next events and its ending after the broker lost the stored ones", async () => {
    const jobId = runningJob(jobs);
    const ws = watchWs(gateway.url, jobId);
    await ws.snapshot;
    const jobServiceEvents = createEventPublisher(jobService);
    for (let i = 1; i <= 3; i++) await jobServiceEvents.publish(jobId, { type: "progress", progress: i * 10 });
    await waitFor("the watcher's first events", async () => ws.events().length === 3);
    await (await jetstreamManager(admin)).streams.delete(streams.jobEvents.name);
    await ensureStreams(jobService);

    // Another process (a worker) knows only the floor it was handed; job-service's publisher remembers its own.
    await createEventPublisher(jobService).publish(jobId, { type: "progress", progress: 40 }, { floor: 3 });
    await jobServiceEvents.publish(jobId, canceled);
    expect(await ws.closed).toMatchObject({ code: 1000 });
    expect(ws.events().map((e) => [e.seq, e.type])).toEqual([
      [1, "progress"],
      [2, "progress"],
      [3, "progress"],
      [4, "progress"],
      [5, "error"],
    ]);
  }, 60_000);
});

describe("a resume while JetStream does not answer", () => {
  let server: ReturnType<typeof spawn>;
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  const jobs = new Map<string, Job>();

  beforeAll(async () => {
    // NATS up, JetStream silent: a server without it, and something on its API subjects that never replies (a stream leader gone).
    const port = await freePort();
    server = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
    const url = `nats://127.0.0.1:${port}`;
    await waitFor("nats-server", async () => connect({ servers: url }).then(async (nc) => (await nc.close(), true), () => false));
    const silent = await connect({ servers: url });
    silent.subscribe("$JS.API.>");
    await silent.flush();
    gateway = await startGateway(url, jobs);
  });
  afterAll(async () => {
    await gateway?.close();
    if (server) await stopChild(server);
  });

  it("answers 503 in the error envelope on SSE and closes a WebSocket with 1013, logging each with its request id", async () => {
    const jobId = runningJob(jobs);
    const [sse, ws] = await Promise.all([
      fetch(`${gateway.url}/api/v1/jobs/${jobId}/events`, { headers: { authorization: "Bearer t", "last-event-id": "3", "x-request-id": "sse-resume-1" } }),
      (async () => {
        const w = watchWs(gateway.url, jobId, { since: 3, requestId: "ws-resume-1" });
        return { ...(await w.closed), messages: w.messages };
      })(),
    ]);
    expect(sse.status).toBe(503);
    expect(await sse.json()).toEqual({
      error: { code: "SERVICE_UNAVAILABLE", message: expect.any(String), details: { service: "events" }, request_id: "sse-resume-1" },
    });
    expect(ws.code).toBe(1013);
    expect(ws.reason).toMatch(/^SERVICE_UNAVAILABLE: /);
    for (const requestId of ["sse-resume-1", "ws-resume-1"]) {
      expect(gateway.lines.filter((l) => l.request_id === requestId && l.msg === "could not read the job's stored events"), requestId).toHaveLength(1);
    }
  }, 30_000);
});
