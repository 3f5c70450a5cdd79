import { randomUUID } from "node:crypto";
import type { Caller } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { getJob } from "./job-store.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

// The job lease is 4 s, so that a lease a test holds outlasts the test's own steps on a loaded machine;
// a lease meant to run out asks for 1 s (SHORT_LEASE_S) and is waited out.
const timing = { leaseMs: 4000, reconcileIntervalMs: 100, redispatchAfterMs: 400, dispatchGraceMs: 300 };
const SHORT_LEASE_S = 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("job-service: HTTP workers' leases share the claim with NATS workers (ADR 040)", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true });
  });
  afterAll(async () => stack?.stop());

  const worker = { token_id: randomUUID(), name: "box", job_types: ["image.thumbnail"] };
  // One type per test, so that a test's lease finds only its own jobs.
  const enqueue = async (caller: Caller, type: string) => {
    const { job } = await stack.client.call("job", "create", { body: { type, input: { file_id: await stack.addFile(caller, "ready", testImage), width: 64, height: 64 } } }, { caller });
    return job;
  };
  const lease = async (type: string, lease_s?: number, as = worker) =>
    (await stack.client.call("job", "workerLease", { job_types: [type], ...(lease_s ? { lease_s } : {}), worker: { ...as, job_types: [type] } })).lease;
  // A lease skips a row another transaction holds (the events consumer applying the job's queued event,
  // say): a worker polls again, as this does, rather than taking a first null for an empty queue.
  const nextLease = (type: string, lease_s?: number) =>
    vi.waitFor(
      async () => {
        const got = await lease(type, lease_s);
        if (!got) throw new Error(`no ${type} job to lease yet`);
        return got;
      },
      { timeout: 5000, interval: 50 },
    );
  const claim = (job_id: string, dispatch = 1) => stack.client.call("job", "claim", { job_id, dispatch, worker: "nats-w1" });
  const row = async (id: string) => (await getJob(stack.db.db, id))!;

  it("never lets a NATS worker run a job an HTTP worker leased, nor leases one a NATS worker claimed", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const leased = await enqueue(user, "image.thumbnail");
    const got = await nextLease("image.thumbnail", 3600);
    expect(got).toMatchObject({ job: { id: leased.id, type: "image.thumbnail", attempt: 1, stages: ["fetch", "process", "upload"] } });
    // Held to the job lease, however long was asked.
    expect(Date.parse(got.expires_at) - Date.now()).toBeLessThanOrEqual(timing.leaseMs);
    // The job's own message reaches a NATS worker: the claim refuses it, and a stale finish does nothing.
    expect(await claim(leased.id)).toEqual({ run: false, reason: "leased" });
    const outcome = { status: "succeeded" as const, result: { files: [] } };
    expect(await stack.client.call("job", "finish", { job_id: leased.id, dispatch: 1, outcome })).toEqual({ applied: false, status: "running" });

    const claimed = await enqueue(user, "image.thumbnail");
    expect(await claim(claimed.id)).toMatchObject({ run: true, job: { id: claimed.id } });
    expect(await lease("image.thumbnail")).toBeNull();

    expect(await stack.client.call("job", "workerFinish", { lease_id: got.lease_id, worker, outcome })).toEqual({ job_id: leased.id, status: "succeeded", applied: true });
    expect(await row(leased.id)).toMatchObject({ status: "succeeded", creditState: "captured" });
    // The NATS worker's job ends too, so that no later test's lease finds it once its claim runs out.
    expect(await stack.client.call("job", "finish", { job_id: claimed.id, dispatch: 1, outcome })).toMatchObject({ applied: true, status: "succeeded" });
  });

  it("gives a lease that ran out to the next lease and refuses the old lease's heartbeat, events and completion with LEASE_LOST", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const job = await enqueue(user, "image.resize");
    const first = await nextLease("image.resize", SHORT_LEASE_S);
    expect(Date.parse(first.expires_at) - Date.now()).toBeLessThanOrEqual(SHORT_LEASE_S * 1000);
    await sleep(SHORT_LEASE_S * 1000 + 100);
    const second = await nextLease("image.resize");
    expect(second.job).toMatchObject({ id: job.id, attempt: 2 });

    const lost = { code: "LEASE_LOST", details: { job_id: job.id, status: "running" } };
    await expect(stack.client.call("job", "workerHeartbeat", { lease_id: first.lease_id, worker })).rejects.toMatchObject(lost);
    await expect(stack.client.call("job", "workerEvents", { lease_id: first.lease_id, worker, events: [{ type: "progress", progress: 50 }] })).rejects.toMatchObject(lost);
    await expect(stack.client.call("job", "workerFinish", { lease_id: first.lease_id, worker, outcome: { status: "succeeded", result: { files: [] } } })).rejects.toMatchObject(lost);
    // Another token's worker does not see the lease at all.
    await expect(stack.client.call("job", "workerHeartbeat", { lease_id: second.lease_id, worker: { ...worker, token_id: randomUUID() } })).rejects.toMatchObject({ code: "NOT_FOUND" });

    expect(await stack.client.call("job", "workerHeartbeat", { lease_id: second.lease_id, worker })).toMatchObject({ job_id: job.id });
    const failed = await stack.client.call("job", "workerFinish", { lease_id: second.lease_id, worker, outcome: { status: "failed", error: { code: "NOPE", message: "gave up" } } });
    expect(failed).toMatchObject({ status: "failed", applied: true });
    expect(await row(job.id)).toMatchObject({ status: "failed", creditState: "released", error: { code: "NOPE" } });
  });

  it("fails a job whose lease ran out on its last attempt as WORKER_LOST, its credits released once, instead of leasing it again", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const job = await enqueue(user, "image.resize");
    expect((await stack.balance(user)).reserved).toBe(job.credits.amount);
    const before = await stack.client.call("job", "workerInFlight", { worker });
    // Three leases (the type's attempts), each left to run out as a worker that dies does.
    for (const attempt of [1, 2, 3]) {
      const got = await nextLease("image.resize", SHORT_LEASE_S);
      expect(got.job).toMatchObject({ id: job.id, attempt });
      expect(await stack.client.call("job", "workerInFlight", { worker, name: worker.name })).toMatchObject({ in_flight: 1 });
      await sleep(SHORT_LEASE_S * 1000 + 100);
    }
    expect(await lease("image.resize")).toBeNull();
    await vi.waitFor(async () => expect(await row(job.id)).toMatchObject({ status: "failed", attempts: 3, creditState: "released", error: { code: "WORKER_LOST" } }), { timeout: 5000, interval: 100 });
    expect((await row(job.id)).error!.message).toContain("attempt 3 of 3");
    // The registry's last hour, from Postgres: one more job ended, failed, under this worker's leases.
    expect(await stack.client.call("job", "workerInFlight", { worker })).toMatchObject({
      in_flight: 0,
      done_last_hour: before.done_last_hour + 1,
      failed_last_hour: before.failed_last_hour + 1,
      recent_durations_ms: expect.arrayContaining([expect.any(Number)]),
    });
    // Released once: the balance is what it was before the reservation, and stays so over more reconciler passes.
    await sleep(timing.reconcileIntervalMs * 3);
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("lets a NATS worker take over the job of an HTTP lease that ran out, as a dead NATS worker's", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const job = await enqueue(user, "image.thumbnail");
    const held = await nextLease("image.thumbnail");
    // Renewed by its events, as a NATS worker's claim is: not taken while they come.
    expect(await stack.client.call("job", "workerEvents", { lease_id: held.lease_id, worker, events: [{ type: "stage", stage: held.job.stages[0]!, status: "running" }] })).toMatchObject({ published: 1 });
    await expect(stack.client.call("job", "workerEvents", { lease_id: held.lease_id, worker, events: [{ type: "stage", stage: "nope", status: "running" }] })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    expect(await claim(job.id)).toEqual({ run: false, reason: "leased" });

    const taken = await vi.waitFor(
      async () => {
        const reply = await claim(job.id);
        expect(reply.run).toBe(true);
        return reply;
      },
      // The lease runs out a job lease after its last renewal (the events above).
      { timeout: timing.leaseMs + 5000, interval: 100 },
    );
    expect(taken.job).toMatchObject({ id: job.id, attempt: 2 });
    await expect(stack.client.call("job", "workerFinish", { lease_id: held.lease_id, worker, outcome: { status: "succeeded", result: { files: [] } } })).rejects.toMatchObject({ code: "LEASE_LOST" });
  });

  it("refuses a lease of a type outside the token's scope, and result files that are not the job's outputs", async () => {
    await expect(stack.client.call("job", "workerLease", { job_types: ["video.transcode"], worker })).rejects.toMatchObject({ code: "FORBIDDEN", details: { job_types: ["video.transcode"] } });
    const user = await stack.newUser(100, "user", "pro");
    await enqueue(user, "image.thumbnail");
    const got = await nextLease("image.thumbnail");
    const someone = await stack.addFile(user);
    await expect(
      stack.client.call("job", "workerFinish", { lease_id: got.lease_id, worker, outcome: { status: "succeeded", result: { files: [{ file_id: someone }] } } }),
    ).rejects.toMatchObject({ code: "INVALID_INPUT", details: { file_id: someone } });
    await expect(stack.client.call("job", "workerInput", { lease_id: got.lease_id, worker, file_id: someone })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
