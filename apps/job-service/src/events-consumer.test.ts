import { streams, type Caller } from "@cutroom/contracts";
import { createEventPublisher, ensureStreams, readJobEvents } from "@cutroom/runtime";
import { randomUUID } from "node:crypto";
import { silentLogger } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createJobHandlers } from "./app.ts";
import { getJob } from "./job-store.ts";
import { startJobStack, type JobStack } from "./test-stack.ts";

describe("job-service's events consumer", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ lifecycle: true });
  });
  afterAll(async () => stack?.stop());

  const stageOf = async (id: string) => (await getJob(stack.db.db, id))!.stages.find((s) => s.name === "grade")?.status;

  it("makes itself again when the broker loses it, so the job rows keep their stages", { timeout: 30_000 }, async () => {
    const caller = await stack.newUser();
    const { job } = await stack.client.call("job", "create", { body: { type: "video.color-grade", input: { file_id: await stack.addFile(caller, "ready"), width: 64 } } }, { caller });
    await stack.deps.events.publish(job.id, { type: "stage", stage: "grade", status: "running" });
    await vi.waitFor(async () => expect(await stageOf(job.id)).toBe("running"), { timeout: 5000, interval: 50 });

    // As after a server back with an empty store: the durable consumer is gone, the stream is not. Tried
    // again: nats-server 2.9 may fail a delete racing the consumer's own writes ("directory not empty").
    await vi.waitFor(() => stack.jsm.consumers.delete(streams.jobEvents.name, "job-service"), { timeout: 5000, interval: 100 });
    await stack.deps.events.publish(job.id, { type: "stage", stage: "grade", status: "done" });
    await vi.waitFor(async () => expect(await stageOf(job.id)).toBe("done"), { timeout: 20_000, interval: 100 });
  });

  it("applies many jobs' events that arrive together, each row ending as its last events left it", { timeout: 30_000 }, async () => {
    const ids = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const caller = await stack.newUser();
        const { job } = await stack.client.call("job", "create", { body: { type: "video.color-grade", input: { file_id: await stack.addFile(caller, "ready"), width: 64 } } }, { caller });
        return job.id;
      }),
    );
    await Promise.all(
      ids.map(async (id, i) => {
        await stack.deps.events.publish(id, { type: "stage", stage: "fetch", status: "done" });
        await stack.deps.events.publish(id, { type: "stage", stage: "grade", status: "running" });
        await stack.deps.events.publish(id, { type: "progress", progress: 10 * (i + 1), stage: "grade" });
      }),
    );
    for (const [i, id] of ids.entries()) {
      await vi.waitFor(async () => expect(await getJob(stack.db.db, id)).toMatchObject({ progress: 10 * (i + 1), stage: "grade" }), { timeout: 5000, interval: 50 });
      expect((await getJob(stack.db.db, id))!.stages.slice(0, 2)).toEqual([
        { name: "fetch", status: "done" },
        { name: "grade", status: "running" },
      ]);
    }
  });

  it("takes only the seq of the events job-service publishes itself (statuses, endings) onto their job's row", { timeout: 30_000 }, async () => {
    const caller = await stack.newUser();
    const { job } = await stack.client.call("job", "create", { body: { type: "video.color-grade", input: { file_id: await stack.addFile(caller, "ready"), width: 64 } } }, { caller });
    const before = (await getJob(stack.db.db, job.id))!;
    const status = await stack.deps.events.publish(job.id, { type: "status", status: "queued", message: "still waiting" });
    expect(status!.seq).toBeGreaterThan(1);
    // Handled once the consumer's ack floor passed the event's stream sequence.
    const stored = await stack.jsm.streams.getMessage(streams.jobEvents.name, { last_by_subj: `jobs.events.${job.id}` });
    await vi.waitFor(async () => expect((await stack.jsm.consumers.info(streams.jobEvents.name, "job-service")).ack_floor.stream_seq).toBeGreaterThanOrEqual(stored!.seq), { timeout: 5000, interval: 50 });
    // The claim, the finish and admissions write what those events mean; the row keeps all but the seq,
    // the floor of later publishers (below: a cancel after the broker lost the events).
    const after = (await getJob(stack.db.db, job.id))!;
    const meaning = (r: typeof before) => ({ status: r.status, stage: r.stage, stages: r.stages, progress: r.progress, error: r.error, result: r.result });
    expect(meaning(after)).toEqual(meaning(before));
    expect(after.lastEventSeq).toBe(status!.seq);
    // A worker's event is applied as ever.
    await stack.deps.events.publish(job.id, { type: "stage", stage: "grade", status: "running" });
    await vi.waitFor(async () => expect(await stageOf(job.id)).toBe("running"), { timeout: 5000, interval: 50 });
  });

  describe("after the broker lost the stored events of a running job", () => {
    const row = async (id: string) => (await getJob(stack.db.db, id))!;
    const enqueueAndClaim = async (caller: Caller) => {
      const { job } = await stack.client.call("job", "create", { body: { type: "video.color-grade", input: { file_id: await stack.addFile(caller, "ready"), width: 64 } } }, { caller });
      // Earlier cases left their jobs queued: the claim serves them first, in the queue's turns (ADR 039).
      const claim = await stack.claimInTurn(job.id);
      expect(claim).toMatchObject({ run: true, job: { id: job.id } });
      return { id: job.id, floor: claim.job!.last_event_seq! };
    };
    // What nats-server back with an empty store looks like: the stream made anew, with nothing in it.
    const loseStore = async () => {
      await stack.jsm.streams.delete(streams.jobEvents.name);
      await ensureStreams(stack.deps.nc);
    };

    it("applies the worker's next events, extending the lease, and ends the job with an event above them all", { timeout: 30_000 }, async () => {
      const caller = await stack.newUser();
      const job = await enqueueAndClaim(caller);
      expect(job.floor).toBe(2);
      const worker = createEventPublisher(await stack.nats.connect());
      await worker.publish(job.id, { type: "stage", stage: "grade", status: "running" }, { floor: job.floor });
      await worker.publish(job.id, { type: "progress", progress: 50 }, { floor: job.floor });
      await vi.waitFor(async () => expect((await row(job.id)).lastEventSeq).toBe(4), { timeout: 5000, interval: 50 });
      // What a watcher saw before the loss; it drops every event not past the last of these.
      expect((await readJobEvents(stack.deps.nc, job.id)).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      const leaseBefore = (await row(job.id)).leaseUntil!;

      await loseStore();
      await worker.publish(job.id, { type: "stage", stage: "grade", status: "done" }, { floor: job.floor });
      await vi.waitFor(async () => expect(await stageOf(job.id)).toBe("done"), { timeout: 20_000, interval: 100 });
      expect((await row(job.id)).leaseUntil!.getTime()).toBeGreaterThan(leaseBefore.getTime());

      // A worker of before sends no last_event_seq: the row's is the floor.
      const outcome = { status: "succeeded" as const, result: { files: [] } };
      expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome })).toEqual({ applied: true, status: "succeeded" });
      expect((await readJobEvents(stack.deps.nc, job.id)).map((e) => [e.seq, e.type])).toEqual([
        [5, "stage"],
        [6, "result"],
      ]);
    });

    it("publishes a cancel from another replica above the claim's running event, with no worker event between", { timeout: 30_000 }, async () => {
      const caller = await stack.newUser();
      const job = await enqueueAndClaim(caller);
      // The running event's seq reaches the row through the events consumer.
      await vi.waitFor(async () => expect((await row(job.id)).lastEventSeq).toBe(job.floor), { timeout: 5000, interval: 50 });
      await loseStore();
      // Another replica: its own publisher, which never saw this job's events, numbers from the row.
      const other = createJobHandlers({ ...stack.deps, events: createEventPublisher(await stack.nats.connect()) });
      await other.cancel({ job_id: job.id }, { requestId: randomUUID(), caller, log: silentLogger() });
      expect(await readJobEvents(stack.deps.nc, job.id)).toEqual([expect.objectContaining({ seq: job.floor + 1, type: "error", status: "canceled" })]);
    });

    it("publishes a cancel above the events job-service applied", { timeout: 30_000 }, async () => {
      const caller = await stack.newUser();
      const job = await enqueueAndClaim(caller);
      const worker = createEventPublisher(await stack.nats.connect());
      await worker.publish(job.id, { type: "stage", stage: "grade", status: "running" }, { floor: job.floor });
      await vi.waitFor(async () => expect((await row(job.id)).lastEventSeq).toBe(3), { timeout: 5000, interval: 50 });
      await loseStore();
      await stack.client.call("job", "cancel", { job_id: job.id }, { caller });
      expect(await readJobEvents(stack.deps.nc, job.id)).toEqual([expect.objectContaining({ seq: 4, type: "error", status: "canceled" })]);
    });
  });
});
