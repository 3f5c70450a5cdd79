import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppError, type Caller, type Job, type Pipeline, type Project } from "@cutroom/contracts";
import { createNatsLogins, freePort, natsConnectOptions, startNats, type NatsLoginName } from "@cutroom/devstack";
import { connectNats, createEventPublisher, createLogger, createPipelineEventPublisher, createStorageReplicas, ensureStreams, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { buildApp } from "../app.ts";
import type { TokenVerifier } from "../plugins/auth.ts";
import { createEventHub } from "../realtime/event-hub.ts";

const caller: Caller = { user_id: randomUUID(), role: "user", tier: "free" };

/**
 * Pipelines' and projects' live events through the gateway (ADR 026), on a nats-server with the
 * stack's per-app users: job-service publishes as job-service, a worker as worker-image, the gateway
 * reads as itself. job-service's RPCs are stood in for: what they do not hold is another user's (404).
 */
describe("pipeline and project channels", () => {
  let dir: string;
  let nats: Awaited<ReturnType<typeof startNats>>;
  let jobService: NatsConnection;
  let worker: NatsConnection;
  let gateway: { url: string; close: () => Promise<void> };
  const pipelines = new Map<string, Pipeline>();
  const projects = new Map<string, Project>();
  const jobs = new Map<string, Job>();

  beforeAll(async () => {
    dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "nats-rtp-"));
    const logins = createNatsLogins();
    nats = await startNats({ storeDir: join(dir, "store"), port: await freePort(), logins });
    const as = (name: NatsLoginName) => connect({ ...natsConnectOptions(nats.url, logins, name), maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    jobService = await as("job-service");
    worker = await as("worker-image");
    await ensureStreams(jobService);

    const log = createLogger("gateway", "silent");
    const nc = await connectNats({ NATS_URL: nats.url, NATS_USER: logins.gateway.user, NATS_PASSWORD: logins.gateway.password }, "gateway", log);
    const hub = createEventHub(nc, log, { retryMs: 100 });
    const notFound = (what: string) => new AppError("NOT_FOUND", `${what} not found`);
    const rpc = {
      async call(service: string, method: string, body: Record<string, string>) {
        if (service === "job" && method === "getPipeline") return pipelines.get(body.pipeline_id!) ?? Promise.reject(notFound("pipeline"));
        if (service === "job" && method === "getProject") return projects.get(body.project_id!) ?? Promise.reject(notFound("project"));
        if (service === "job" && method === "get") return jobs.get(body.job_id!) ?? Promise.reject(notFound("job"));
        if (service === "job" && method === "list") {
          const data = [...jobs.values()].filter((j) => j.project_id === body.project_id && j.status === body.status);
          return { data, total: data.length, limit: 100, offset: 0 };
        }
        throw new Error(`unexpected call ${service}.${method}`);
      },
    } as unknown as RpcClient;
    const verifier = { verify: async () => caller, refresh: async () => {}, userChanged: async () => {} } as unknown as TokenVerifier;
    const app = await buildApp({ rpc, nc, verifier, hub, log, storage: createStorageReplicas(["http://127.0.0.1:9"]) });
    await app.listen({ port: 0, host: "127.0.0.1" });
    await hub.ready;
    gateway = {
      url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`,
      close: async () => {
        await app.close();
        await hub.close();
        await nc.close();
      },
    };
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.allSettled([jobService?.close(), worker?.close()]);
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const now = new Date().toISOString();
  const newPipeline = (projectId: string | null = null): string => {
    const id = randomUUID();
    pipelines.set(id, { id, type: "storyboard", flavor: "default", project_id: projectId, status: "running", progress: 0, stages: [], outputs: [], credits: 0, cost_usd: 0, estimate: { credits: 0, eta_seconds: null }, error: null, created_at: now, updated_at: now, completed_at: null });
    return id;
  };
  const newProject = (): string => {
    const id = randomUUID();
    projects.set(id, { id, name: "hats", description: null, job_count: 0, created_at: now, updated_at: now });
    return id;
  };
  const newJob = (projectId: string, status: Job["status"]): string => {
    const id = randomUUID();
    jobs.set(id, { id, type: "image.generate", status, progress: 0, stage: null, stages: [], input: {}, result: null, error: null, credits: { amount: 1, state: "reserved" }, attempts: 1, max_attempts: 3, next_attempt_at: null, priority: "normal", start_by: null, timeout_s: null, provider_cost_usd: null, project_id: projectId, queue_position: null, queue_reason: null, eta_seconds: null, display_name: null, metadata: {}, created_at: now, updated_at: now, started_at: now, completed_at: null });
    return id;
  };

  /** A socket's messages, resolved waits on them, and its close. */
  function open(path: string) {
    const ws = new WebSocket(`${gateway.url}${path}`, { headers: { authorization: "Bearer t" } });
    const messages: any[] = [];
    ws.on("message", (data) => messages.push(JSON.parse(data.toString())));
    const opened = new Promise((r, j) => ws.once("open", r).once("error", j));
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    const until = (test: (m: any[]) => boolean) => vi.waitFor(() => expect(test(messages), JSON.stringify(messages)).toBe(true), { timeout: 8000, interval: 25 });
    return { ws, messages, opened, closed, until, send: async (m: unknown) => (await opened, ws.send(JSON.stringify(m))) };
  }

  const run = [
    { type: "stage_started", stage: "images", job_ids: [] },
    { type: "stage_progress", stage: "images", progress: 50 },
    { type: "stage_completed", stage: "images", status: "succeeded" },
    { type: "stage_started", stage: "approve_images" },
    { type: "waiting_approval", stage: "approve_images", file_ids: [] },
    { type: "stage_completed", stage: "approve_images", status: "succeeded" },
    { type: "pipeline_completed", status: "succeeded", progress: 100 },
  ] as const;

  it("shows a pipeline's snapshot, then its events in seq order without gaps, and closes 1000 after pipeline_completed; a resume with since gets only the later ones", async () => {
    const id = newPipeline();
    const publisher = createPipelineEventPublisher(jobService);
    const watch = open(`/ws/pipelines/${id}`);
    await watch.until((m) => m[0]?.type === "snapshot");
    for (const e of run) await publisher.publish(id, { ...e, job_ids: "job_ids" in e ? [...e.job_ids] : undefined, file_ids: "file_ids" in e ? [...e.file_ids] : undefined });

    expect(await watch.closed).toMatchObject({ code: 1000 });
    expect(watch.messages[0]).toMatchObject({ type: "snapshot", pipeline: { id, status: "running" } });
    expect(watch.messages.slice(1).map((m) => [m.seq, m.type])).toEqual(run.map((e, i) => [i + 1, e.type]));
    expect(watch.messages.at(-1)).toMatchObject({ pipeline_id: id, status: "succeeded" });

    const resumed = open(`/ws/pipelines/${id}?since=4`);
    expect(await resumed.closed).toMatchObject({ code: 1000 });
    expect(resumed.messages.map((m) => m.seq ?? m.type)).toEqual(["snapshot", 5, 6, 7]);

    // The same on WS /ws, with the pipeline named on the snapshot.
    const multi = open("/ws");
    await multi.send({ type: "subscribe_pipeline", pipeline_id: id, since: 5 });
    await multi.until((m) => m.length === 3);
    expect(multi.messages.map((m) => m.seq ?? m.type)).toEqual(["snapshot", 6, 7]);
    expect(multi.messages[0]).toMatchObject({ pipeline_id: id, pipeline: { id } });
    multi.ws.close();
  });

  it("carries on a project's channel the events of its jobs (the worker's too) and pipelines, and nothing of another project", async () => {
    const [project, other] = [newProject(), newProject()];
    const running = newJob(project, "running");
    const events = createEventPublisher(jobService);
    const workerEvents = createEventPublisher(worker);
    const pipelineEvents = createPipelineEventPublisher(jobService);
    await events.publish(running, { type: "status", status: "running", project_id: project });

    const channel = open("/ws");
    await channel.send({ type: "subscribe_project", project_id: project });
    await channel.until((m) => m[0]?.type === "snapshot");
    expect(channel.messages[0]).toMatchObject({ type: "snapshot", project_id: project, project: { id: project } });

    // A job running before the subscription: its worker's events name no project, the hub knows it from the project's list.
    await workerEvents.publish(running, { type: "progress", progress: 40 });
    // A job queued after: its queued event (job-service's) names the project, the worker's after it do not.
    const later = newJob(project, "queued");
    await events.publish(later, { type: "status", status: "queued", project_id: project });
    await workerEvents.publish(later, { type: "progress", progress: 10 });
    const pipeline = newPipeline(project);
    await pipelineEvents.publish(pipeline, { type: "stage_started", stage: "images", project_id: project });
    // Another project's job and pipeline.
    const stranger = newJob(other, "queued");
    await events.publish(stranger, { type: "status", status: "queued", project_id: other });
    await workerEvents.publish(stranger, { type: "progress", progress: 99 });
    await pipelineEvents.publish(newPipeline(other), { type: "stage_started", stage: "images", project_id: other });
    await events.publish(later, { type: "result", status: "succeeded", result: { files: [] }, project_id: project });

    await channel.until((m) => m.some((e) => e.type === "result"));
    expect(channel.messages.slice(1).map((m) => [m.job_id ?? m.pipeline_id, m.type, m.project_id])).toEqual([
      [running, "progress", project],
      [later, "status", project],
      [later, "progress", project],
      [pipeline, "stage_started", project],
      [later, "result", project],
    ]);

    await channel.send({ type: "unsubscribe_project", project_id: project });
    await channel.until((m) => m.at(-1)?.type === "unsubscribed");
    await workerEvents.publish(running, { type: "progress", progress: 80 });
    await new Promise((r) => setTimeout(r, 300));
    expect(channel.messages.at(-1)).toMatchObject({ type: "unsubscribed", project_id: project });
    channel.ws.close();
  });

  it("refuses another user's pipeline and project: 404 on the socket", async () => {
    const single = open(`/ws/pipelines/${randomUUID()}`);
    expect(await single.closed).toMatchObject({ code: 1008, reason: expect.stringMatching(/^NOT_FOUND/) });

    const multi = open("/ws");
    const [pipelineId, projectId] = [randomUUID(), randomUUID()];
    await multi.send({ type: "subscribe_pipeline", pipeline_id: pipelineId });
    await multi.send({ type: "subscribe_project", project_id: projectId });
    await multi.until((m) => m.length === 2);
    expect(multi.messages).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "error", code: "NOT_FOUND", pipeline_id: pipelineId }),
        expect.objectContaining({ type: "error", code: "NOT_FOUND", project_id: projectId }),
      ]),
    );
    multi.ws.close();
  });
});
