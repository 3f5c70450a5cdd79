import type { Caller, PipelineEvent } from "@cutroom/contracts";
import { createEventPublisher, readPipelineEvents } from "@cutroom/runtime";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { JobRow } from "./job-store.ts";
import { getPipelineRow, pipelineJobs, updatePipeline } from "./pipeline-store.ts";
import { startJobStack, testClip, testImage, type JobStack } from "./test-stack.ts";

const timing = { leaseMs: 5000, reconcileIntervalMs: 100, redispatchAfterMs: 60_000, dispatchGraceMs: 300 };

/* The events a storyboard run publishes (ADR 026), with the test playing the worker as pipelines.test.ts does. */
describe("pipeline events: each transition of a run, with a gap-free per-run seq", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true, provider: "emulator" });
  });
  afterAll(async () => stack?.stop());

  const input = { prompt: "a man buys a hat", num_images: 2, video_prompt: "he tips the hat", duration: 2 };
  const waitFor = <T>(fn: () => Promise<T>) => vi.waitFor(fn, { timeout: 8000, interval: 50 });
  const stageJobs = async (id: string, stage: string) => (await pipelineJobs(stack.db.db, [id])).filter((j) => j.pipelineStage === stage);
  const events = async (id: string, since = 0) => readPipelineEvents(stack.deps.nc, id, since);
  const summary = (list: PipelineEvent[]) => list.map((e) => [e.seq, e.type, e.stage ?? e.status]);

  const finishAs = async (owner: Caller, job: JobRow) => {
    const file = job.type === "image.generate" ? testImage : testClip;
    const fileId = await stack.addFile(owner, "ready", file);
    const files = [{ file_id: fileId, filename: file.filename ?? "out", content_type: file.contentType ?? "video/mp4", size: 1234 }];
    return stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome: { status: "succeeded", result: { files } } });
  };
  const stage = (id: string, name: string, count: number) =>
    waitFor(async () => {
      const rows = await stageJobs(id, name);
      expect(rows).toHaveLength(count);
      return rows;
    });
  const outputsOf = async (id: string, name: string) => (await stageJobs(id, name)).map((j) => (j.result as { files: { file_id: string }[] }).files[0]!.file_id);

  it("tells stage_started, stage_progress, waiting_approval, stage_completed and pipeline_completed in order, and records the last seq", async () => {
    // Pro: both images run at once (a free user's run one at a time, ADR 031).
    const user = await stack.newUser(100, "user", "pro");
    const created = await stack.client.call("job", "createPipeline", { type: "storyboard", input }, { caller: user });
    const worker = createEventPublisher(stack.deps.nc);

    const images = await stage(created.id, "images", 2);
    for (const [i, job] of images.entries()) {
      const claim = await stack.client.call("job", "claim", { job_id: job.id, dispatch: 1, worker: "test" });
      await worker.publish(job.id, { type: "progress", progress: 50 }, { floor: claim.job!.last_event_seq! });
      // Each report applied before the next is sent: the events consumer applies events that arrive together as one batch.
      await waitFor(async () => expect((await events(created.id)).filter((e) => e.type === "stage_progress")).toHaveLength(i + 1));
    }
    // Both images at 50: the stage's progress is their mean, told once per job's report.
    await waitFor(async () => expect((await events(created.id)).filter((e) => e.type === "stage_progress").map((e) => e.progress)).toEqual([25, 50]));
    for (const job of images) await finishAs(user, job);
    const waiting = await waitFor(async () => {
      const list = await events(created.id);
      expect(list.at(-1)?.type).toBe("waiting_approval");
      return list.at(-1)!;
    });
    const imageFiles = await outputsOf(created.id, "images");
    expect(waiting).toMatchObject({ stage: "approve_images", file_ids: imageFiles, project_id: null });

    await stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_images", file_ids: [imageFiles[0]!] }, { caller: user });
    const [clip] = await stage(created.id, "clips", 1);
    await stack.client.call("job", "claim", { job_id: clip!.id, dispatch: 1, worker: "test" });
    await finishAs(user, clip!);
    await waitFor(async () => expect((await events(created.id)).at(-1)).toMatchObject({ type: "waiting_approval", stage: "approve_clips" }));
    await stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_clips", file_ids: await outputsOf(created.id, "clips") }, { caller: user });
    const [compose] = await stage(created.id, "compose", 1);
    await stack.client.call("job", "claim", { job_id: compose!.id, dispatch: 1, worker: "test" });
    await finishAs(user, compose!);

    const all = await waitFor(async () => {
      const list = await events(created.id);
      expect(list.at(-1)?.type).toBe("pipeline_completed");
      return list;
    });
    expect(summary(all)).toEqual([
      [1, "stage_started", "images"],
      [2, "stage_progress", "images"],
      [3, "stage_progress", "images"],
      [4, "stage_completed", "images"],
      [5, "stage_started", "approve_images"],
      [6, "waiting_approval", "approve_images"],
      [7, "stage_completed", "approve_images"],
      [8, "stage_started", "clips"],
      [9, "stage_completed", "clips"],
      [10, "stage_started", "approve_clips"],
      [11, "waiting_approval", "approve_clips"],
      [12, "stage_completed", "approve_clips"],
      [13, "stage_started", "compose"],
      [14, "stage_completed", "compose"],
      [15, "pipeline_completed", "succeeded"],
    ]);
    expect(all[0]).toMatchObject({ pipeline_id: created.id, job_ids: images.map((j) => j.id) });
    expect(all.at(-1)).toMatchObject({ status: "succeeded", progress: 100 });
    expect(summary(await events(created.id, 12)).map(([seq]) => seq)).toEqual([13, 14, 15]);
    await waitFor(async () => expect((await getPipelineRow(stack.db.db, created.id))?.lastEventSeq).toBe(15));
  });

  it("ends a canceled run's events with its stages' and its own cancellation, carrying the project", async () => {
    const user = await stack.newUser(100);
    const project = await stack.client.call("job", "createProject", { name: "hats" }, { caller: user });
    const created = await stack.client.call("job", "createPipeline", { type: "storyboard", input, project_id: project.id }, { caller: user });
    await stack.client.call("job", "cancelPipeline", { pipeline_id: created.id }, { caller: user });
    const list = await events(created.id);
    expect(summary(list)).toEqual([
      [1, "stage_started", "images"],
      [2, "stage_completed", "images"],
      [3, "pipeline_completed", "canceled"],
    ]);
    expect(list[1]).toMatchObject({ status: "canceled" });
    expect(list.every((e) => e.project_id === project.id)).toBe(true);
  });

  it("publishes the pipeline_completed of a run that ended without it (its publish failed): watchers are not left waiting", async () => {
    const user = await stack.newUser(100);
    const created = await stack.client.call("job", "createPipeline", { type: "storyboard", input }, { caller: user });
    // As a crash between the commit and the publish leaves it: ended in the database, not on the stream.
    await updatePipeline(stack.db.db, created.id, { status: "failed", error: { code: "STAGE_FAILED", message: "stage images: it fell over" }, completedAt: new Date() });
    const ending = await waitFor(async () => {
      const list = await events(created.id);
      expect(list.at(-1)?.type).toBe("pipeline_completed");
      return list;
    });
    expect(summary(ending)).toEqual([
      [1, "stage_started", "images"],
      [2, "pipeline_completed", "failed"],
    ]);
    expect(ending[1]).toMatchObject({ error: { code: "STAGE_FAILED" } });
  });
});
