import { isTerminalEvent, JobEvent, streams, subjects } from "@cutroom/contracts";
import { ensureStreams } from "@cutroom/runtime";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startJobStack, type JobStack } from "./test-stack.ts";

const timing = { reconcileIntervalMs: 100, dispatchGraceMs: 300 };

describe("ended jobs' terminal events", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true });
  });
  afterAll(async () => stack?.stop());

  const lastStored = async (jobId: string) => {
    const msg = await stack.jsm.streams.getMessage(streams.jobEvents.name, { last_by_subj: subjects.jobEvents(jobId) }).catch(() => null);
    return msg ? JobEvent.parse(msg.json()) : null;
  };

  it("reach the stream even when the publish at the ending failed, so watchers are not left waiting", { timeout: 20_000 }, async () => {
    const caller = await stack.newUser();
    const { job } = await stack.client.call("job", "create", { body: { type: "video.color-grade", input: { file_id: await stack.addFile(caller, "ready"), width: 64 } } }, { caller });
    // JOB_EVENTS is gone while the job is canceled (as in a leader election): the ending is recorded, its event is not stored.
    await stack.jsm.streams.delete(streams.jobEvents.name);
    const { job: canceled } = await stack.client.call("job", "cancel", { job_id: job.id }, { caller });
    expect(canceled.status).toBe("canceled");
    await ensureStreams(await stack.nats.connect());
    expect(await lastStored(job.id)).toBeNull();

    await vi.waitFor(
      async () => {
        const last = await lastStored(job.id);
        expect(last && isTerminalEvent(last)).toBe(true);
        expect(last).toMatchObject({ type: "error", status: "canceled", error: { code: "CANCELED" } });
      },
      { timeout: 10_000, interval: 100 },
    );
  });
});
