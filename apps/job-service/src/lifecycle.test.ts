import { randomUUID } from "node:crypto";
import { JobDispatch, JobEvent, jobLimits, subjects, type Caller, type JobEventInput } from "@cutroom/contracts";
import { createEventPublisher, ensureStreams, readJobEvents } from "@cutroom/runtime";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { getJob } from "./job-store.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

const timing = { leaseMs: 800, reconcileIntervalMs: 100, redispatchAfterMs: 400, dispatchGraceMs: 300 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("job-service: claims, worker events and the reconciler, on real Postgres and NATS", () => {
  let stack: JobStack;
  let worker: ReturnType<typeof createEventPublisher>;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true });
    worker = createEventPublisher(await stack.nats.connect());
  });
  afterAll(async () => stack?.stop());

  const enqueue = async (caller: Caller, type = "video.color-grade") => {
    const { job } = await stack.client.call("job", "create", { body: { type, input: { file_id: await stack.addFile(caller, "ready", type.startsWith("image.") ? testImage : {}), width: 64 } } }, { caller });
    return job;
  };
  const claim = (job_id: string, worker = "w1", dispatch = 1) => stack.client.call("job", "claim", { job_id, dispatch, worker });
  const row = async (id: string) => (await getJob(stack.db.db, id))!;
  /** Waits until job-service has acked every event published so far. */
  const eventsApplied = () =>
    vi.waitFor(
      async () => {
        const info = await stack.jsm.consumers.info("JOB_EVENTS", "job-service");
        expect(info.num_pending + info.num_ack_pending).toBe(0);
      },
      { timeout: 5000, interval: 50 },
    );
  const lastDispatch = async (queue: string, type: string) => {
    const stored = await stack.jsm.streams.getMessage("JOBS", { last_by_subj: subjects.jobRun(queue, type) });
    return JobDispatch.parse(stored!.json());
  };

  it("records a finished job and captures its credits before the owner hears of it, once however often the worker reports", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user);
    await claim(job.id, "w1", 1);
    const files = [{ file_id: randomUUID(), filename: "out.mp4", content_type: "video/mp4", size: 10 }];
    const outcome = { status: "succeeded" as const, result: { files } };
    // When the terminal event is visible, the row and the ledger already say so.
    const seen = new Promise<unknown>((resolve) => {
      const sub = stack.deps.nc.subscribe(subjects.jobEvents(job.id), {
        callback: (_e, m) => {
          if (JobEvent.parse(m.json()).type !== "result") return;
          sub.unsubscribe();
          void Promise.all([row(job.id), stack.balance(user)]).then(([r, balance]) => resolve({ row: r, balance }));
        },
      });
    });
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "succeeded" });
    expect(await seen).toMatchObject({ row: { status: "succeeded", creditState: "captured", progress: 100 }, balance: { credits: 75, reserved: 0 } });
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "succeeded" });
    const events = await readJobEvents(await stack.nats.connect(), job.id);
    expect(events.filter((e) => e.type === "result")).toHaveLength(1);
    const ledger = await stack.client.call("billing", "ledger", { user_id: user.user_id, limit: 20, offset: 0 });
    expect(ledger.data.filter((e) => e.kind === "capture")).toHaveLength(1);
  });

  it("finishes a job while billing-service is down: the ending and its capture commit together, without it (ADR 028)", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user);
    await claim(job.id, "w1", 1);
    const billingUp = await stack.billingDown();
    const outcome = { status: "succeeded" as const, result: { files: [] } };
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "succeeded" });
    const events = await readJobEvents(await stack.nats.connect(), job.id);
    expect(events.filter((e) => e.type === "result")).toHaveLength(1);
    expect(await row(job.id)).toMatchObject({ status: "succeeded", creditState: "captured" });

    billingUp();
    await vi.waitFor(async () => expect(await stack.balance(user)).toMatchObject({ credits: 75, reserved: 0 }), { timeout: 5000, interval: 50 });
  });

  it("releases a failed job's credits as it records the failure, once however often the worker reports", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user);
    await claim(job.id, "w1", 1);
    const outcome = { status: "failed" as const, error: { code: "INVALID_MEDIA", message: "not a video" } };
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "failed" });
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "failed" });
    expect(await row(job.id)).toMatchObject({ status: "failed", creditState: "released" });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    const ledger = await stack.client.call("billing", "ledger", { user_id: user.user_id, limit: 20, offset: 0 });
    expect(ledger.data.filter((e) => e.kind === "release")).toHaveLength(1);
  });

  it("does not let a worker finish a job that was canceled meanwhile: the credits stay refunded", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user);
    await claim(job.id, "w1", 1);
    await stack.client.call("job", "cancel", { job_id: job.id }, { caller: user });
    const outcome = { status: "succeeded" as const, result: { files: [] } };
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: false, status: "canceled" });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    expect(await row(job.id)).toMatchObject({ status: "canceled", creditState: "released" });
  });

  it("lets the first worker claim a queued job and tells a worker holding another copy of it that it is leased", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user);
    expect(await claim(job.id, "w1", 1)).toEqual({
      run: true,
      // last_event_seq: the queued event and the claim's own running event.
      job: { id: job.id, user_id: user.user_id, type: "video.color-grade", input: job.input, attempt: 1, limits: jobLimits("free"), project_id: null, last_event_seq: 2, timeout_s: 3600 },
    });
    expect(await claim(job.id, "w2", 2)).toEqual({ run: false, reason: "leased" });
    expect(await row(job.id)).toMatchObject({ status: "running", attempts: 1, startedAt: expect.any(Date), leaseUntil: expect.any(Date) });
    const events = await readJobEvents(await stack.nats.connect(), job.id);
    expect(events.map((e) => [e.type, "status" in e ? e.status : null])).toEqual([
      ["status", "queued"],
      ["status", "running"],
    ]);
  });

  it("runs the claimed dispatch again when it comes back, because its worker gave it back for a retry", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user);
    await claim(job.id, "w1", 1);
    await worker.publish(job.id, { type: "log", level: "warn", message: "attempt 1 failed; retrying" });
    await eventsApplied();
    expect(await claim(job.id, "w2", 1)).toMatchObject({ run: true, job: { attempt: 2 } });
    expect(await claim(job.id, "w3", 1)).toMatchObject({ run: true, job: { attempt: 3 } });
    expect(await claim(job.id, "w3", 2)).toEqual({ run: false, reason: "leased" });
  });

  it("keeps a job with its worker while the worker sends events, and hands it over once they stop and the lease runs out", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user);
    await claim(job.id, "w1");
    const startedAt = (await row(job.id)).startedAt;
    for (let i = 1; i <= 5; i++) {
      await sleep(300);
      await worker.publish(job.id, { type: "progress", progress: i * 10 });
    }
    await eventsApplied();
    // 1.5 s after the claim, well past one lease, yet the events kept it.
    expect(await claim(job.id, "w2", 2)).toEqual({ run: false, reason: "leased" });

    await sleep(timing.leaseMs + 200);
    expect(await claim(job.id, "w2", 2)).toMatchObject({ run: true, job: { attempt: 2 } });
    expect(await row(job.id)).toMatchObject({ status: "running", attempts: 2, startedAt, progress: 50 });
  });

  it("tells a worker not to run a canceled or unknown job", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user);
    await stack.client.call("job", "cancel", { job_id: job.id }, { caller: user });
    expect(await claim(job.id)).toEqual({ run: false, reason: "canceled" });
    expect(await claim(randomUUID())).toEqual({ run: false, reason: "not found" });
  });

  it("follows the worker's stages and progress, succeeds on its result and captures the credits once, even when the result arrives twice", async () => {
    const user = await stack.newUser(100);
    const job = await enqueue(user);
    await claim(job.id);
    const steps: JobEventInput[] = [
      { type: "stage", stage: "fetch", status: "running" },
      { type: "progress", progress: 20, stage: "fetch" },
      { type: "stage", stage: "fetch", status: "done" },
      { type: "stage", stage: "grade", status: "running" },
      { type: "progress", progress: 70, stage: "grade" },
    ];
    for (const step of steps) await worker.publish(job.id, step);
    await eventsApplied();
    expect(await stack.client.call("job", "get", { job_id: job.id }, { caller: user })).toMatchObject({
      status: "running",
      progress: 70,
      stage: "grade",
      stages: [
        { name: "fetch", status: "done" },
        { name: "grade", status: "running" },
        { name: "upload", status: "pending" },
      ],
    });

    const files = [{ file_id: randomUUID(), filename: "graded.mp4", content_type: "video/mp4", size: 1000 }];
    const outcome = { status: "succeeded" as const, result: { files } };
    // A worker that crashed after reporting retries: the same finish arrives a second time.
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "succeeded" });
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "succeeded" });

    const done = await stack.client.call("job", "get", { job_id: job.id }, { caller: user });
    expect(done).toMatchObject({ status: "succeeded", progress: 100, result: { files }, credits: { amount: 25, state: "captured" }, completed_at: expect.any(String) });
    const events = await readJobEvents(await stack.nats.connect(), job.id);
    expect(events.filter((e) => e.type === "result")).toHaveLength(1);
    expect(await stack.balance(user)).toMatchObject({ credits: 75, reserved: 0 });
    const ledger = await stack.client.call("billing", "ledger", { user_id: user.user_id, limit: 20, offset: 0 });
    expect(ledger.data.filter((e) => e.kind === "capture")).toHaveLength(1);
  });

  it("releases the credits when the worker reports the job failed, once however often it reports", async () => {
    const user = await stack.newUser(100);
    const job = await enqueue(user);
    await claim(job.id);
    await worker.publish(job.id, { type: "stage", stage: "fetch", status: "failed" });
    const outcome = { status: "failed" as const, error: { code: "UNSUPPORTED_MEDIA", message: "not a video" } };
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "failed" });
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "failed" });
    expect(await stack.client.call("job", "get", { job_id: job.id }, { caller: user })).toMatchObject({
      status: "failed",
      error: { code: "UNSUPPORTED_MEDIA", message: "not a video" },
      credits: { state: "released" },
      completed_at: expect.any(String),
    });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    const ledger = await stack.client.call("billing", "ledger", { user_id: user.user_id, limit: 20, offset: 0 });
    expect(ledger.data.filter((e) => e.kind === "release")).toHaveLength(1);
  });

  it("does not end a job on a result event a worker published itself: only finish ends it", async () => {
    const user = await stack.newUser(100);
    const job = await enqueue(user);
    await claim(job.id);
    await worker.publish(job.id, { type: "result", status: "succeeded", result: { files: [] } });
    await worker.publish(job.id, { type: "error", status: "failed", error: { code: "X", message: "old worker" } });
    await eventsApplied();
    expect(await stack.client.call("job", "get", { job_id: job.id }, { caller: user })).toMatchObject({
      status: "running",
      result: null,
      error: null,
      completed_at: null,
      credits: { state: "reserved" },
    });
    expect(await stack.balance(user)).toMatchObject({ credits: 75, reserved: 25 });
  });

  it("keeps a job canceled, and charges nothing, when its worker reports a result after the cancel", async () => {
    const user = await stack.newUser(100);
    const job = await enqueue(user);
    await claim(job.id);
    await stack.client.call("job", "cancel", { job_id: job.id }, { caller: user });
    await worker.publish(job.id, { type: "progress", progress: 90 });
    await worker.publish(job.id, { type: "result", status: "succeeded", result: { files: [] } });
    await eventsApplied();
    expect(await stack.client.call("job", "get", { job_id: job.id }, { caller: user })).toMatchObject({
      status: "canceled",
      result: null,
      credits: { state: "released" },
    });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("cancels a job while billing is down and gives the credits back once billing returns", async () => {
    const user = await stack.newUser(100);
    const job = await enqueue(user);
    await claim(job.id);
    const billingUp = await stack.billingDown();
    const reply = await stack.client.call("job", "cancel", { job_id: job.id }, { caller: user });
    expect(reply).toMatchObject({ credits_refunded: 0, job: { status: "canceled", credits: { state: "reserved" } } });

    billingUp();
    await vi.waitFor(async () => expect((await row(job.id)).creditState).toBe("released"), { timeout: 5000, interval: 50 });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("re-dispatches a queued job whose message the broker lost", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user, "audio.cleanup");
    await vi.waitFor(async () => expect(await stack.queued("audio", "audio.cleanup")).toBe(1), { timeout: 5000, interval: 20 });
    await stack.jsm.streams.purge("JOBS", { filter: subjects.jobRun("audio", "audio.cleanup") });
    expect(await stack.queued("audio", "audio.cleanup")).toBe(0);

    await vi.waitFor(async () => expect(await stack.queued("audio", "audio.cleanup")).toBe(1), { timeout: 5000, interval: 50 });
    expect(await lastDispatch("audio", "audio.cleanup")).toMatchObject({ job_id: job.id, dispatch: 2 });
    // The reconciler records the dispatch in its transaction, which commits just after the publish.
    await vi.waitFor(async () => expect(await row(job.id)).toMatchObject({ status: "queued", dispatchCount: 2 }), { timeout: 5000, interval: 20 });
  });

  it("re-dispatches a running job whose worker died after its message was lost, and the next worker takes it over", async () => {
    const user = await stack.newUser();
    const job = await enqueue(user, "image.thumbnail");
    await claim(job.id, "w1");
    await stack.jsm.streams.purge("JOBS", { filter: subjects.jobRun("image", "image.thumbnail") });

    await vi.waitFor(async () => expect(await stack.queued("image", "image.thumbnail")).toBe(1), { timeout: 5000, interval: 50 });
    const redispatch = await lastDispatch("image", "image.thumbnail");
    expect(redispatch).toMatchObject({ job_id: job.id, dispatch: 2 });
    expect(await claim(job.id, "w2", redispatch.dispatch)).toMatchObject({ run: true, job: { attempt: 2 } });
  });

  it("dispatches a job whose first publish failed once the broker is back", async () => {
    const user = await stack.newUser();
    const nc = await stack.nats.connect();
    await stack.jsm.streams.delete("JOBS");
    const job = await enqueue(user, "image.resize");
    expect(await row(job.id)).toMatchObject({ status: "queued", dispatchCount: 0, dispatchedAt: null });

    await ensureStreams(nc);
    await vi.waitFor(async () => expect(await stack.queued("image", "image.resize")).toBe(1), { timeout: 5000, interval: 50 });
    expect(await lastDispatch("image", "image.resize")).toMatchObject({ job_id: job.id, dispatch: 1 });
    await vi.waitFor(async () => expect(await row(job.id)).toMatchObject({ dispatchCount: 1, dispatchedAt: expect.any(Date) }), { timeout: 5000, interval: 20 });
  });
});
