import { randomUUID } from "node:crypto";
import { isAppError, type Caller, type Pipeline } from "@cutroom/contracts";
import { eq } from "@cutroom/db";
import { jobs, pipelines } from "@cutroom/db/jobs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { finishJob, getJob, type JobRow } from "./job-store.ts";
import { pipelineJobs } from "./pipeline-store.ts";
import { projectApprovalMap } from "./project-store.ts";
import { startJobStack, testClip, testImage, type JobStack } from "./test-stack.ts";

const timing = { leaseMs: 5000, reconcileIntervalMs: 100, redispatchAfterMs: 60_000, dispatchGraceMs: 300 };

/*
 * The pipeline engine on real Postgres and NATS, with billing and storage beside it. No worker runs:
 * the test plays one, claiming each job and finishing it through job.claim and job.finish with output
 * files recorded as a worker's uploads leave them.
 */
describe("pipelines: storyboard runs of ordinary jobs, advanced by job-service", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true, provider: "emulator" });
  });
  afterAll(async () => stack?.stop());

  const input = { prompt: "a man buys a hat", num_images: 2, video_prompt: "he tips the hat", duration: 2 };
  const create = (caller: Caller, body: Record<string, unknown> = { type: "storyboard", input }) =>
    stack.client.call("job", "createPipeline", body as never, { caller });
  const get = (caller: Caller, id: string) => stack.client.call("job", "getPipeline", { pipeline_id: id }, { caller });
  const stageJobs = async (id: string, stage: string) => (await pipelineJobs(stack.db.db, [id])).filter((j) => j.pipelineStage === stage);
  const failure = async (call: Promise<unknown>) => {
    const err = await call.then(() => undefined, (e: unknown) => e);
    if (!isAppError(err)) throw new Error(`expected an AppError, got ${String(err)}`);
    return err;
  };
  const waitFor = <T>(fn: () => Promise<T>) => vi.waitFor(fn, { timeout: 8000, interval: 50 });
  const waitStatus = (caller: Caller, id: string, status: Pipeline["status"]) =>
    waitFor(async () => {
      const p = await get(caller, id);
      expect(p.status).toBe(status);
      return p;
    });

  /** Plays the worker for one job: claims it and reports an output file of the kind its type makes. */
  const finishAs = async (owner: Caller, job: JobRow, status: "succeeded" | "failed" = "succeeded") => {
    await stack.claimInTurn(job.id, "test");
    if (status === "failed") {
      return stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome: { status: "failed", error: { code: "PROVIDER_ERROR", message: "the model fell over" } } });
    }
    const file = job.type === "image.generate" ? testImage : testClip;
    const fileId = await stack.addFile(owner, "ready", file);
    const files = [{ file_id: fileId, filename: file.filename ?? "out", content_type: file.contentType ?? "video/mp4", size: 1234 }];
    return stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, provider_cost_usd: 0.01, outcome: { status: "succeeded", result: { files } } });
  };
  const finishStage = async (owner: Caller, id: string, stage: string, count: number) => {
    const started = await waitFor(async () => {
      const rows = await stageJobs(id, stage);
      expect(rows).toHaveLength(count);
      return rows;
    });
    for (const job of started) await finishAs(owner, job);
    return started;
  };
  const outputsOf = async (id: string, stage: string) => (await stageJobs(id, stage)).map((j) => (j.result as { files: { file_id: string }[] }).files[0]!.file_id);

  it("runs images → approval → a clip per approved image → approval → compose, with the estimate up front and only the approved files going on", async () => {
    const user = await stack.newUser(100);
    const created = await create(user);
    // 2 images at 2 credits, 2 clips of 2 s at 5 a second, a 4 s compose at 20 a started minute; the models' ETAs along the chain (flux 3 s, wan i2v 150 s).
    expect(created).toMatchObject({ type: "storyboard", flavor: "default", status: "running", estimate: { credits: 44, eta_seconds: 153 }, credits: 4 });
    expect(created.stages.map((s) => [s.name, s.kind, s.status])).toEqual([
      ["images", "jobs", "running"],
      ["approve_images", "gate", "pending"],
      ["clips", "jobs", "pending"],
      ["approve_clips", "gate", "pending"],
      ["compose", "jobs", "pending"],
    ]);
    expect(created.stages[0]!.job_ids).toHaveLength(2);
    const imageJobs = await stageJobs(created.id, "images");
    expect(imageJobs.map((j) => [j.type, j.input.prompt, j.input.aspect_ratio, j.pipelineOrder])).toEqual([
      ["image.generate", "a man buys a hat", "16:9", 0],
      ["image.generate", "a man buys a hat", "16:9", 1],
    ]);
    expect(await stack.balance(user)).toMatchObject({ credits: 96, reserved: 4 });

    await finishStage(user, created.id, "images", 2);
    const waiting = await waitStatus(user, created.id, "waiting_approval");
    expect(waiting.stages.map((s) => s.status)).toEqual(["succeeded", "waiting_approval", "pending", "pending", "pending"]);
    expect(waiting.progress).toBe(20);

    const images = await outputsOf(created.id, "images");
    const clipFile = await stack.addFile(user, "ready", testClip);
    expect((await failure(stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_images", file_ids: [clipFile] }, { caller: user }))).code).toBe("INVALID_INPUT");
    expect((await failure(stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_images", file_ids: [] }, { caller: user }))).code).toBe("INVALID_INPUT");
    expect((await failure(stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_clips", file_ids: [] }, { caller: user }))).code).toBe("INVALID_STATE");

    const approved = await stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_images", file_ids: [images[1]!] }, { caller: user });
    expect(approved.status).toBe("running");
    expect(approved.stages[1]).toMatchObject({ status: "succeeded", approved_file_ids: [images[1]] });
    expect((await failure(stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_images", file_ids: [images[0]!] }, { caller: user }))).code).toBe("INVALID_STATE");

    const [clipJob] = await finishStage(user, created.id, "clips", 1);
    expect(clipJob!.input).toMatchObject({ image_file_id: images[1], prompt: "he tips the hat", duration_s: 2, aspect_ratio: "16:9" });
    await waitStatus(user, created.id, "waiting_approval");
    const clips = await outputsOf(created.id, "clips");
    await stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_clips", file_ids: clips }, { caller: user });

    const [composeJob] = await finishStage(user, created.id, "compose", 1);
    expect(composeJob!.input).toMatchObject({ clips: [{ file_id: clips[0] }], audio: [], transition: "cut" });
    const done = await waitStatus(user, created.id, "succeeded");
    expect(done.outputs).toEqual(await outputsOf(created.id, "compose"));
    expect(done.progress).toBe(100);
    // Its jobs' credits, all captured: 4 for the images, 10 for one clip, 20 for the compose.
    expect(done).toMatchObject({ credits: 34, cost_usd: expect.closeTo(0.04, 5) });
    expect(done.completed_at).not.toBeNull();
    expect(await stack.balance(user)).toMatchObject({ credits: 66, reserved: 0 });
  });

  it("fails the run when a job fails: the stage's other job is canceled and its credits come back", async () => {
    const user = await stack.newUser(100);
    const created = await create(user);
    const [first, second] = await stageJobs(created.id, "images");
    await finishAs(user, first!, "failed");
    const failed = await waitStatus(user, created.id, "failed");
    expect(failed.error).toMatchObject({ code: "STAGE_FAILED" });
    expect(failed.stages.map((s) => s.status)).toEqual(["failed", "canceled", "canceled", "canceled", "canceled"]);
    expect(failed.stages[0]!.error).toMatchObject({ code: "PROVIDER_ERROR" });
    await waitFor(async () => expect(await getJob(stack.db.db, second!.id)).toMatchObject({ status: "canceled", creditState: "released" }));
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("cancels a run: its running jobs are canceled and refunded, its stages marked canceled; a second cancel is 409", async () => {
    const user = await stack.newUser(100);
    const created = await create(user);
    const [first] = await stageJobs(created.id, "images");
    await stack.claimInTurn(first!.id, "test");
    const { pipeline, credits_refunded } = await stack.client.call("job", "cancelPipeline", { pipeline_id: created.id }, { caller: user });
    expect(credits_refunded).toBe(4);
    expect(pipeline).toMatchObject({ status: "canceled", credits: 0 });
    expect(pipeline.stages.every((s) => s.status === "canceled")).toBe(true);
    for (const job of await stageJobs(created.id, "images")) expect(job).toMatchObject({ status: "canceled", creditState: "released" });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    expect((await failure(stack.client.call("job", "cancelPipeline", { pipeline_id: created.id }, { caller: user }))).code).toBe("INVALID_STATE");
  });

  it("files a run's jobs under its project, and records the gate's verdicts as the project's approvals", async () => {
    const user = await stack.newUser(100);
    const project = await stack.client.call("job", "createProject", { name: "hats" }, { caller: user });
    const created = await create(user, { type: "storyboard", input, project_id: project.id });
    expect(created.project_id).toBe(project.id);
    const imageJobs = await finishStage(user, created.id, "images", 2);
    expect(imageJobs.map((j) => j.projectId)).toEqual([project.id, project.id]);
    await waitStatus(user, created.id, "waiting_approval");
    const images = await outputsOf(created.id, "images");
    await stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_images", file_ids: [images[0]!] }, { caller: user });
    expect(Object.fromEntries(await projectApprovalMap(stack.db.db, project.id))).toEqual({ [images[0]!]: true, [images[1]!]: false });
    const [clipJob] = await stageJobs(created.id, "clips");
    expect(clipJob).toMatchObject({ projectId: project.id, pipelineStage: "clips", pipelineOrder: 0 });
  });

  it("cancels the project's runs when the project is deleted: one waiting at its gate, one with a running job; their jobs canceled and refunded", async () => {
    const user = await stack.newUser(100);
    const project = await stack.client.call("job", "createProject", { name: "doomed" }, { caller: user });
    const atGate = await create(user, { type: "storyboard", input, project_id: project.id });
    await finishStage(user, atGate.id, "images", 2);
    await waitStatus(user, atGate.id, "waiting_approval");
    const working = await create(user, { type: "storyboard", input: { ...input, prompt: "a man loses a hat" }, project_id: project.id });
    const [first] = await stageJobs(working.id, "images");
    await stack.claimInTurn(first!.id, "test");
    // The gate's images were made and captured (4); the working run holds 4 more.
    expect(await stack.balance(user)).toMatchObject({ credits: 92, reserved: 4 });

    const deleted = await stack.client.call("job", "deleteProject", { project_id: project.id }, { caller: user });
    expect(deleted).toMatchObject({ jobs_canceled: 2, credits_refunded: 4 });
    for (const id of [atGate.id, working.id]) {
      const run = await get(user, id);
      expect(run.status).toBe("canceled");
      expect(run.stages.some((s) => s.status === "pending" || s.status === "running" || s.status === "waiting_approval")).toBe(false);
    }
    for (const job of await stageJobs(working.id, "images")) expect(job).toMatchObject({ status: "canceled", creditState: "released" });
    expect(await stack.balance(user)).toMatchObject({ credits: 96, reserved: 0 });
    // A retried delete finds nothing left to end.
    expect(await stack.client.call("job", "deleteProject", { project_id: project.id }, { caller: user })).toMatchObject({ jobs_canceled: 0, credits_refunded: 0 });
    expect((await get(user, atGate.id)).status).toBe("canceled");
  });

  it("hides a run from another user: get, approve and cancel are 404", async () => {
    const owner = await stack.newUser(100);
    const other = await stack.newUser(100);
    const created = await create(owner);
    expect((await failure(get(other, created.id))).code).toBe("NOT_FOUND");
    expect((await failure(stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_images", file_ids: [] }, { caller: other }))).code).toBe("NOT_FOUND");
    expect((await failure(stack.client.call("job", "cancelPipeline", { pipeline_id: created.id }, { caller: other }))).code).toBe("NOT_FOUND");
    expect((await stack.client.call("job", "listPipelines", { limit: 20, offset: 0 }, { caller: other })).total).toBe(0);
    expect((await stack.client.call("job", "listPipelines", { limit: 20, offset: 0, status: "running" }, { caller: owner })).data.map((p) => p.id)).toEqual([created.id]);
  });

  it("loses nothing when a job ends without its advance (a crash between): the reconciler advances the run", async () => {
    const user = await stack.newUser(100);
    const created = await create(user);
    // Recorded as finish records it, without the finish handler that would advance the run.
    for (const job of await stageJobs(created.id, "images")) {
      await stack.claimInTurn(job.id, "test");
      const fileId = await stack.addFile(user, "ready", testImage);
      await finishJob(stack.db.db, job.id, 1, { status: "succeeded", result: { files: [{ file_id: fileId, filename: "a.png", content_type: "image/png", size: 1 }] } });
    }
    await waitStatus(user, created.id, "waiting_approval");
  });

  it("cancels and refunds the jobs of a run that ended without canceling them (a crash between): the reconciler does, once the run's own cancel had its time", async () => {
    const user = await stack.newUser(100);
    const created = await create(user);
    // Ended as the cancel's commit leaves it, without the job cancels that follow it.
    await stack.db.db.update(pipelines).set({ status: "canceled", completedAt: new Date() }).where(eq(pipelines.id, created.id));
    for (const job of await stageJobs(created.id, "images")) {
      await waitFor(async () => expect(await getJob(stack.db.db, job.id)).toMatchObject({ status: "canceled", creditState: "released" }));
    }
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("makes each job once however many advances run at once (job ids follow from run, stage and place)", async () => {
    const user = await stack.newUser(100);
    const created = await create(user);
    await stack.db.db.update(pipelines).set({ stages: created.stages.map((s) => ({ ...s, status: "pending", job_ids: [] })) as never, status: "queued" }).where(eq(pipelines.id, created.id));
    await Promise.all([stack.pipelines.advance(created.id), stack.pipelines.advance(created.id), stack.pipelines.advance(created.id)]);
    const rows = await stack.db.db.select().from(jobs).where(eq(jobs.pipelineId, created.id));
    expect(rows).toHaveLength(2);
    expect((await get(user, created.id)).stages[0]!.job_ids.sort()).toEqual(rows.map((r) => r.id).sort());
    expect(await stack.balance(user)).toMatchObject({ reserved: 4 });
  });

  it("answers 402 to an approval whose next stage the owner cannot afford and leaves the gate open, nothing reserved; approved once there are credits", async () => {
    const user = await stack.newUser(14);
    const created = await create(user);
    await finishStage(user, created.id, "images", 2);
    await waitStatus(user, created.id, "waiting_approval");
    const images = await outputsOf(created.id, "images");
    expect(await stack.balance(user)).toMatchObject({ credits: 10, reserved: 0 });
    const approve = () => stack.client.call("job", "approvePipeline", { pipeline_id: created.id, stage: "approve_images", file_ids: images }, { caller: user });
    // Two clips of 2 s at 5 credits a second.
    expect(await failure(approve())).toMatchObject({ code: "INSUFFICIENT_CREDITS", details: { required: 20, available: 10 } });
    const still = await get(user, created.id);
    expect(still.status).toBe("waiting_approval");
    expect(still.stages.map((s) => s.status)).toEqual(["succeeded", "waiting_approval", "pending", "pending", "pending"]);
    expect(await stageJobs(created.id, "clips")).toHaveLength(0);
    expect(await stack.balance(user)).toMatchObject({ credits: 10, reserved: 0 });

    await stack.client.call("billing", "grant", { user_id: user.user_id, amount: 10 });
    const approved = await approve();
    expect(approved.status).toBe("running");
    expect(await stageJobs(created.id, "clips")).toHaveLength(2);
    expect(await stack.balance(user)).toMatchObject({ credits: 0, reserved: 20 });
  });

  it("makes one run for one Idempotency-Key: a retry (even at once) gets the same run back, replayed, nothing reserved twice; another request with the key is 409", async () => {
    const user = await stack.newUser(100);
    const keyed = (body: Record<string, unknown>) => create(user, { ...body, idempotency_key: "run-1" });
    const [first, racing] = await Promise.all([keyed({ type: "storyboard", input }), keyed({ type: "storyboard", input })]);
    expect(racing.id).toBe(first.id);
    expect([first.replayed, racing.replayed].filter(Boolean)).toHaveLength(1);
    const again = await keyed({ type: "storyboard", input });
    expect(again).toMatchObject({ id: first.id, replayed: true, status: "running" });
    expect((await stack.client.call("job", "listPipelines", { limit: 20, offset: 0 }, { caller: user })).total).toBe(1);
    expect(await stack.balance(user)).toMatchObject({ credits: 96, reserved: 4 });
    expect(await failure(keyed({ type: "storyboard", input: { ...input, prompt: "another hat" } }))).toMatchObject({ code: "IDEMPOTENCY_CONFLICT" });
    // The key is the user's own: another user's same key makes another run.
    const other = await stack.newUser(100);
    expect((await create(other, { type: "storyboard", input, idempotency_key: "run-1" })).id).not.toBe(first.id);
  });

  it("refuses what cannot run before anything is made: unknown type or flavor, bad input (422), a first stage the user cannot afford (402)", async () => {
    const user = await stack.newUser(3);
    expect(await failure(create(user, { type: "nope", input }))).toMatchObject({ code: "INVALID_INPUT", details: { known_types: expect.arrayContaining(["storyboard"]) } });
    expect(await failure(create(user, { type: "storyboard", flavor: "nope", input }))).toMatchObject({ code: "INVALID_INPUT", details: { known_flavors: expect.arrayContaining(["default"]) } });
    const bad = await failure(create(user, { type: "storyboard", input: { ...input, num_images: 9, prompt: "" } }));
    expect(bad).toMatchObject({ code: "INVALID_INPUT", details: { fields: expect.arrayContaining([expect.objectContaining({ path: "num_images" }), expect.objectContaining({ path: "prompt" })]) } });
    expect(await failure(create(user, { type: "storyboard", input: { ...input, audio_file_id: randomUUID() } }))).toMatchObject({ code: "INVALID_INPUT" });
    expect(await failure(create(user, { type: "storyboard", input, project_id: randomUUID() }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await failure(create(user))).toMatchObject({ code: "INSUFFICIENT_CREDITS", details: { required: 4, available: 3 } });
    expect((await stack.client.call("job", "listPipelines", { limit: 20, offset: 0 }, { caller: user })).total).toBe(0);
    expect(await stack.balance(user)).toMatchObject({ credits: 3, reserved: 0 });
  });
});
