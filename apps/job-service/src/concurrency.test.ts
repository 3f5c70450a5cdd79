import { JobDispatch, type Caller, type Job } from "@cutroom/contracts";
import { sqlTag as sql } from "@cutroom/db";
import { createRpcClient, readJobEvents, serveRpc } from "@cutroom/runtime";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createJobService } from "./app.ts";
import { getJob, queuePositions } from "./job-store.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

const timing = { leaseMs: 5000, reconcileIntervalMs: 100, redispatchAfterMs: 60_000, dispatchGraceMs: 300 };

describe("job-service: concurrent jobs per tier (ADR 031), on real Postgres and NATS", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true });
  });
  afterAll(async () => stack?.stop());

  const enqueue = async (caller: Caller, client = stack.client): Promise<Job> => {
    const file_id = await stack.addFile(caller, "ready", testImage);
    return (await client.call("job", "create", { body: { type: "image.thumbnail", input: { file_id } } }, { caller })).job;
  };
  const claim = (job_id: string, dispatch = 1, worker = "w1") => stack.client.call("job", "claim", { job_id, dispatch, worker });
  const finish = (job_id: string, dispatch = 1) => stack.client.call("job", "finish", { job_id, dispatch, outcome: { status: "succeeded", result: { files: [] } } });
  const get = (caller: Caller, job_id: string) => stack.client.call("job", "get", { job_id }, { caller });
  /** The dispatches the JOBS stream holds for these jobs. */
  const dispatched = async (ids: string[]) => {
    const found: JobDispatch[] = [];
    const info = await stack.jsm.streams.info("JOBS");
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && seq > 0; seq++) {
      const m = await stack.jsm.streams.getMessage("JOBS", { seq }).catch(() => null);
      const d = m && JobDispatch.safeParse(m.json());
      if (d?.success && ids.includes(d.data.job_id)) found.push(d.data);
    }
    return found;
  };

  it("holds a free user's second job queued with its place until the first ends, then dispatches and runs it, never both at once", async () => {
    const user = await stack.newUser(100, "user", "free");
    const first = await enqueue(user);
    const second = await enqueue(user);
    expect(first).toMatchObject({ status: "queued", queue_position: null, queue_reason: null });
    expect(second).toMatchObject({ status: "queued", queue_position: 1, queue_reason: "concurrency_limit" });
    expect(await get(user, second.id)).toMatchObject({ queue_position: 1, queue_reason: "concurrency_limit" });
    const listed = await stack.client.call("job", "list", { limit: 10, offset: 0 }, { caller: user });
    expect(listed.data.find((j) => j.id === second.id)).toMatchObject({ queue_position: 1 });

    await vi.waitFor(async () => expect((await dispatched([first.id, second.id])).map((d) => d.job_id)).toEqual([first.id]), { timeout: 5000, interval: 50 });
    expect(await claim(first.id)).toMatchObject({ run: true });
    // A delivery naming the held job (a stray redelivery) does not start it.
    expect(await claim(second.id)).toMatchObject({ run: false, reason: "held" });
    expect((await dispatched([second.id])).length).toBe(0);

    await finish(first.id);
    await vi.waitFor(async () => expect((await dispatched([second.id])).map((d) => d.dispatch)).toEqual([1]), { timeout: 5000, interval: 50 });
    // Out of its owner's line, into its worker queue's (ADR 037): first there, nothing else of the queue waits.
    await vi.waitFor(async () => expect(await get(user, second.id)).toMatchObject({ status: "queued", queue_position: 1, queue_reason: "waiting_for_worker" }), { timeout: 5000, interval: 50 });
    expect(await claim(second.id)).toMatchObject({ run: true });

    const [a, b] = [(await getJob(stack.db.db, first.id))!, (await getJob(stack.db.db, second.id))!];
    expect(b.startedAt!.getTime()).toBeGreaterThanOrEqual(a.completedAt!.getTime());
    const events = await readJobEvents(await stack.nats.connect(), second.id);
    expect(events.map((e) => (e.type === "status" ? [e.status, e.queue_position ?? null] : [e.type]))).toEqual([
      ["queued", 1],
      ["queued", null],
      ["running", null],
    ]);
  });

  it("holds a pro user's fourth job, and hands it the slot a cancel frees", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const jobs = [await enqueue(user), await enqueue(user), await enqueue(user), await enqueue(user), await enqueue(user)];
    expect(jobs.map((j) => j.queue_position)).toEqual([null, null, null, 1, 2]);
    for (const j of jobs.slice(0, 3)) await vi.waitFor(async () => expect(await claim(j.id)).toMatchObject({ run: true }), { timeout: 5000, interval: 50 });
    expect(await claim(jobs[3]!.id)).toMatchObject({ run: false });

    await stack.client.call("job", "cancel", { job_id: jobs[1]!.id }, { caller: user });
    await vi.waitFor(async () => expect(await claim(jobs[3]!.id)).toMatchObject({ run: true }), { timeout: 5000, interval: 50 });
    expect(await get(user, jobs[4]!.id)).toMatchObject({ queue_position: 1, queue_reason: "concurrency_limit" });
    // Its place changed: its events say so.
    await vi.waitFor(async () => {
      const events = await readJobEvents(await stack.nats.connect(), jobs[4]!.id);
      expect(events.map((e) => (e.type === "status" ? e.queue_position : undefined))).toEqual([2, 1]);
    }, { timeout: 10_000, interval: 50 });
  });

  it("hands on a slot whose ending was recorded without its hand-over (a crash between them): the reconciler dispatches the waiting job", async () => {
    const user = await stack.newUser(100, "user", "free");
    const first = await enqueue(user);
    const second = await enqueue(user);
    await vi.waitFor(async () => expect(await claim(first.id)).toMatchObject({ run: true }), { timeout: 5000, interval: 50 });
    // As a cancel that committed just before its process died.
    await stack.db.db.execute(sql`update jobs.jobs set status = 'canceled', completed_at = now() where id = ${first.id}`);
    await vi.waitFor(async () => expect(await claim(second.id)).toMatchObject({ run: true }), { timeout: 5000, interval: 50 });
  });

  it("keeps the limit when two job-service replicas create a user's jobs at once, and gives each waiting job its own place", async () => {
    const nc = await stack.nats.connect();
    const replica = createJobService({ ...stack.deps, nc });
    serveRpc(nc, "job", replica.handlers, stack.deps.log);
    const viaReplica = createRpcClient(await stack.nats.connect(), { timeoutMs: 5000 });
    const user = await stack.newUser(1000, "user", "pro");
    const created = await Promise.all(Array.from({ length: 12 }, (_, i) => enqueue(user, i % 2 === 0 ? stack.client : viaReplica)));
    expect(created.filter((j) => j.queue_reason === null)).toHaveLength(3);
    expect(
      created
        .map((j) => j.queue_position)
        .filter((p) => p !== null)
        .sort((a, b) => a! - b!),
    ).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Every job runs in turn, never more than three at once.
    const left = new Set(created.map((j) => j.id));
    while (left.size > 0) {
      // Every job not yet run is tried: those that start together are running at once.
      const started: string[] = [];
      for (const id of left) if ((await claim(id)).run) started.push(id);
      expect(started.length).toBeLessThanOrEqual(3);
      for (const id of started) {
        left.delete(id);
        await finish(id);
      }
      if (started.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    await nc.drain();
  });

  it("gives a job read as held but admitted since no place in the held line (a list racing an admission answered place 0, a 500)", async () => {
    const caller = await stack.newUser(10, "user", "free");
    const first = await enqueue(caller);
    const second = await enqueue(caller);
    const read = (await getJob(stack.db.db, second.id))!;
    expect(read).toMatchObject({ held: true, status: "queued" });
    expect(await queuePositions(stack.db.db, [read])).toEqual(new Map([[second.id, 1]]));
    // Admitted between the read of the row and the count of its place (the first job ended meanwhile).
    await stack.db.db.execute(sql`update jobs.jobs set held = false where id = ${second.id}`);
    expect(await queuePositions(stack.db.db, [read])).toEqual(new Map());
    // Out of the way of the cases after it: queued jobs are claimed in their queue's turns.
    for (const job_id of [first.id, second.id]) await stack.client.call("job", "cancel", { job_id }, { caller });
  });
});
