import { streams } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
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

    // As after a server back with an empty store: the durable consumer is gone, the stream is not.
    await stack.jsm.consumers.delete(streams.jobEvents.name, "job-service");
    await stack.deps.events.publish(job.id, { type: "stage", stage: "grade", status: "done" });
    await vi.waitFor(async () => expect(await stageOf(job.id)).toBe("done"), { timeout: 20_000, interval: 100 });
  });
});
