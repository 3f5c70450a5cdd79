import { JobDispatch, subjects, type Caller } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { getJob } from "./job-store.ts";
import { startJobStack, type JobStack } from "./test-stack.ts";

const timing = { leaseMs: 800, reconcileIntervalMs: 100, redispatchAfterMs: 400, dispatchGraceMs: 300 };

describe("the reconciler re-dispatches each job by its own message", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true });
  });
  afterAll(async () => stack?.stop());

  const enqueue = async (caller: Caller) => {
    const { job } = await stack.client.call("job", "create", { body: { type: "video.color-grade", input: { file_id: await stack.addFile(caller, "ready"), width: 64 } } }, { caller });
    return job;
  };
  const row = async (id: string) => (await getJob(stack.db.db, id))!;

  it("re-dispatches the overdue job whose message was lost while another job's message on the same subject is still held", { timeout: 15_000 }, async () => {
    // Pro: both jobs dispatched at once (a free user's second waits for the first, ADR 031).
    const user = await stack.newUser(100, "user", "pro");
    const jobs = [await enqueue(user), await enqueue(user)];
    await vi.waitFor(async () => expect(await stack.queued("video", "video.color-grade")).toBe(2), { timeout: 5000, interval: 20 });
    // The broker loses one of the two messages (no worker runs here, so both wait on the subject).
    const last = (await stack.jsm.streams.getMessage("JOBS", { last_by_subj: subjects.jobRun("video", "video.color-grade") }))!;
    const lost = jobs.find((j) => j.id === JobDispatch.parse(last.json()).job_id)!;
    const held = jobs.find((j) => j !== lost)!;
    await stack.jsm.streams.deleteMessage("JOBS", last.seq);

    await vi.waitFor(async () => expect(await row(lost.id)).toMatchObject({ dispatchCount: 2 }), { timeout: 5000, interval: 50 });
    // Both were overdue in the same passes: the held one was looked at and left alone.
    await new Promise((r) => setTimeout(r, timing.redispatchAfterMs + 3 * timing.reconcileIntervalMs));
    expect(await row(held.id)).toMatchObject({ status: "queued", dispatchCount: 1 });
    expect(await stack.queued("video", "video.color-grade")).toBe(2);
    const redispatch = (await stack.jsm.streams.getMessage("JOBS", { last_by_subj: subjects.jobRun("video", "video.color-grade") }))!;
    expect(JobDispatch.parse(redispatch.json())).toMatchObject({ job_id: lost.id, dispatch: 2 });
    expect((await row(lost.id)).dispatchSeq).toBe(redispatch.seq);
  });
});
