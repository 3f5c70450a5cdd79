import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { GiveUp, stopChild, waitFor } from "@cutroom/devstack";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { jobHelpers } from "./jobs.ts";
import { makePng } from "./media.ts";
import { signUpAdmin, useStack } from "./stack.ts";

// No worker-image in the stack: the only image workers are this file's, whose jobs wait for the test.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"], env: { WORKER_GONE_AFTER_MS: "3000" } });
const jobs = jobHelpers(ctx);

interface HeldWorker {
  child: ChildProcess;
  /** Job ids this process started, in order. */
  started: string[];
  release: (jobId: string) => void;
}

/** A worker-image process (runWorker) with short heartbeats, whose jobs run until released. */
async function startHeldWorker(): Promise<HeldWorker> {
  const login = ctx.stack.natsLogins!["worker-image"];
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "held-worker.ts")], {
    env: { ...process.env, NATS_URL: ctx.stack.natsUrl, NATS_USER: login.user, NATS_PASSWORD: login.password, LOG_LEVEL: "warn", WORKER_CONCURRENCY: "1", WORKER_HEARTBEAT_MS: "200" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const worker: HeldWorker = { child, started: [], release: (jobId) => child.send({ release: jobId }) };
  let ready = false;
  let exited = false;
  child.on("message", (m: { type?: string; started?: string }) => {
    if (m.type === "ready") ready = true;
    if (m.started) worker.started.push(m.started);
  });
  child.once("exit", () => (exited = true));
  await waitFor("the held worker to be ready", async () => {
    if (exited) throw new GiveUp("the held worker exited during start");
    return ready;
  }, 60_000, 50);
  return worker;
}

/** An admin's /ws with subscribe_workers sent; every message it received. */
async function watchWorkers(token: string) {
  const ws = new WebSocket(new URL("/ws", ctx.stack.url.replace(/^http/, "ws")), { headers: { authorization: `Bearer ${token}` } });
  const messages: any[] = [];
  ws.on("message", (data) => messages.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  ws.send(JSON.stringify({ type: "subscribe_workers" }));
  return { ws, messages };
}

describe("the worker registry: GET /workers, drain and resume, worker_health", () => {
  const children: ChildProcess[] = [];
  let admin: string;
  let user: { token: string; fileId: string };
  const workerOf = async (pid: number) => (await ctx.api.get("/workers", admin)).body.workers.find((w: { pid: number }) => w.pid === pid);
  const enqueue = async () => {
    const res = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: user.fileId, width: 16 } }, user.token);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body.id as string;
  };
  const spawnWorker = async () => {
    const w = await startHeldWorker();
    children.push(w.child);
    await vi.waitFor(async () => expect(await workerOf(w.child.pid!)).toMatchObject({ status: "healthy" }), { timeout: 15_000, interval: 100 });
    return w;
  };

  beforeAll(async () => {
    admin = (await signUpAdmin(ctx)).token;
    const u = await ctx.api.signUp();
    const file = await jobs.upload(u.token, "pixel.png", "image/png", await makePng(32, 24));
    user = { token: u.token, fileId: file.id };
  }, 60_000);
  afterAll(async () => void (await Promise.allSettled(children.map((c) => stopChild(c)))));

  it("refuses everyone but admins: 403 for GET /workers and drain, an error on the socket for subscribe_workers", async () => {
    expect((await ctx.api.get("/workers", user.token)).status).toBe(403);
    expect((await ctx.api.post("/workers/anything/drain", {}, user.token)).status).toBe(403);
    expect((await ctx.api.get("/workers")).status).toBe(401);
    const { ws, messages } = await watchWorkers(user.token);
    await vi.waitFor(() => expect(messages).toContainEqual({ type: "error", code: "FORBIDDEN", message: expect.stringContaining("admins") }), { timeout: 5000, interval: 50 });
    ws.close();
    const unknown = await ctx.api.post("/workers/worker-image-nowhere-1-abcdef/drain", {}, admin);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: "NOT_FOUND", request_id: expect.any(String) });
  });

  it("lists a worker killed mid-job as unhealthy, then gone, and tells the admin's socket each", { timeout: 90_000 }, async () => {
    const doomed = await spawnWorker();
    const listed = await workerOf(doomed.child.pid!);
    expect(listed).toMatchObject({ kind: "worker-image", queue: "image", status: "healthy", load: 0, in_flight: 0, concurrency: 1, version: expect.any(String), host: expect.any(String) });
    expect(listed.job_types).toContain("image.resize");
    const { ws, messages } = await watchWorkers(admin);
    const healthOf = (status: string) => messages.find((m) => m.type === "worker_health" && m.worker_id === listed.id && m.status === status);
    await vi.waitFor(() => expect(healthOf("healthy")).toMatchObject({ kind: "worker-image", load: 0, active_jobs: 0 }), { timeout: 5000, interval: 50 });

    const jobId = await enqueue();
    await vi.waitFor(() => expect(doomed.started).toContain(jobId), { timeout: 20_000, interval: 50 });
    await vi.waitFor(async () => expect(await workerOf(doomed.child.pid!)).toMatchObject({ status: "healthy", load: 100, in_flight: 1, free_slots: 0 }), { timeout: 5000, interval: 100 });
    await vi.waitFor(() => expect(messages).toContainEqual({ type: "worker_health", worker_id: listed.id, kind: "worker-image", status: "healthy", load: 100, active_jobs: 1 }), { timeout: 5000, interval: 50 });

    doomed.child.kill("SIGKILL");
    await vi.waitFor(async () => expect((await workerOf(doomed.child.pid!)).status).toBe("unhealthy"), { timeout: 10_000, interval: 100 });
    await vi.waitFor(async () => expect((await workerOf(doomed.child.pid!)).status).toBe("gone"), { timeout: 15_000, interval: 100 });
    await vi.waitFor(() => expect(healthOf("gone")).toBeDefined(), { timeout: 5000, interval: 50 });
    expect(healthOf("unhealthy")).toMatchObject({ kind: "worker-image", active_jobs: 1 });
    expect(messages.indexOf(healthOf("unhealthy"))).toBeLessThan(messages.indexOf(healthOf("gone")));
    ws.close();
    // Its job would come back to the next test's workers once its ack wait ran out.
    expect((await ctx.api.post(`/jobs/${jobId}/cancel`, {}, user.token)).status).toBe(200);
    // Still listed while gone, and no longer counted as serving its job types.
    const after = (await ctx.api.get("/workers", admin)).body;
    expect(after.job_types["image.resize"]).toMatchObject({ queue: "image", healthy_instances: 0 });
  });

  it("a drained worker finishes its job and takes no more: the next goes to another instance; resumed, it takes jobs again", { timeout: 120_000 }, async () => {
    const first = await spawnWorker();
    const firstId = (await workerOf(first.child.pid!)).id as string;
    const job1 = await enqueue();
    await vi.waitFor(() => expect(first.started).toContain(job1), { timeout: 20_000, interval: 50 });

    const drained = await ctx.api.post(`/workers/${firstId}/drain`, {}, admin);
    expect(drained.status, JSON.stringify(drained.body)).toBe(200);
    expect(drained.body).toMatchObject({ id: firstId, status: "draining", in_flight: 1 });
    expect(await workerOf(first.child.pid!)).toMatchObject({ status: "draining" });
    const health = (await ctx.api.request("GET", "/health", { token: admin })).body;
    expect(health.unserved_job_types).toContain("image.resize");
    expect(health.services["worker-image"]).toMatchObject({ draining: 1, in_flight: 1 });

    const job2 = await enqueue();
    first.release(job1);
    expect(await jobs.settled(job1, user.token)).toMatchObject({ status: "succeeded" });
    expect((await ctx.api.get(`/jobs/${job2}`, user.token)).body.status).toBe("queued");

    // job2 waited for a worker that takes jobs, and the second instance runs it.
    const second = await spawnWorker();
    await vi.waitFor(() => expect(second.started).toContain(job2), { timeout: 30_000, interval: 50 });
    second.release(job2);
    expect(await jobs.settled(job2, user.token)).toMatchObject({ status: "succeeded" });
    expect(first.started).toEqual([job1]);
    expect(await workerOf(first.child.pid!)).toMatchObject({ status: "draining", in_flight: 0, jobs_done_last_hour: 1, jobs_failed_last_hour: 0 });

    // The second drained, the first resumed: the next job is the first's.
    expect((await ctx.api.post(`/workers/${(await workerOf(second.child.pid!)).id}/drain`, {}, admin)).status).toBe(200);
    const resumed = await ctx.api.post(`/workers/${firstId}/resume`, {}, admin);
    expect(resumed.body).toMatchObject({ id: firstId, status: "healthy" });
    const job3 = await enqueue();
    await vi.waitFor(() => expect(first.started).toContain(job3), { timeout: 30_000, interval: 50 });
    first.release(job3);
    expect(await jobs.settled(job3, user.token)).toMatchObject({ status: "succeeded" });
    expect(second.started).toEqual([job2]);
    const listing = (await ctx.api.get("/workers", admin)).body;
    expect(listing.job_types["image.resize"]).toEqual({ queue: "image", healthy_instances: 1 });
  });
});
