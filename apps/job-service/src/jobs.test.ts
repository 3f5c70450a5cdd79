import { randomUUID } from "node:crypto";
import { JobDispatch, streams, subjects, type Caller } from "@cutroom/contracts";
import { eq } from "@cutroom/db";
import { files } from "@cutroom/db/storage";
import { createEventPublisher, ensureStreams, readJobEvents } from "@cutroom/runtime";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { getJob } from "./job-store.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

describe("job-service: enqueue and records, on real Postgres and NATS", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack();
  });
  afterAll(async () => stack?.stop());

  const create = (caller: Caller, body: { type: string; input: Record<string, unknown>; project_id?: string }, idempotency_key?: string) =>
    stack.client.call("job", "create", { body, idempotency_key }, { caller });

  it("queues a job: reserves its credits and puts exactly one dispatch on the JOBS stream", async () => {
    const user = await stack.newUser(100);
    const file_id = await stack.addFile(user);
    const { job, created } = await create(user, { type: "video.color-grade", input: { file_id, exposure: 0.5 } });

    expect(created).toBe(true);
    expect(job).toMatchObject({
      type: "video.color-grade",
      status: "queued",
      progress: 0,
      stages: [
        { name: "fetch", status: "pending" },
        { name: "grade", status: "pending" },
        { name: "upload", status: "pending" },
      ],
      credits: { amount: 25, state: "reserved" },
      input: { file_id, exposure: 0.5, preset: "Filmic", saturation: 100 },
      attempts: 0,
    });
    expect(await stack.balance(user)).toMatchObject({ credits: 75, reserved: 25 });

    // The dispatch follows the answer (ADR 019).
    await vi.waitFor(async () => expect(await getJob(stack.db.db, job.id)).toMatchObject({ dispatchCount: 1, dispatchedAt: expect.any(Date) }), { timeout: 5000, interval: 20 });
    expect(await stack.queued("video", "video.color-grade")).toBe(1);
    const stored = await stack.jsm.streams.getMessage("JOBS", { last_by_subj: subjects.jobRun("video", "video.color-grade") });
    expect(JobDispatch.parse(stored!.json())).toEqual({ job_id: job.id, user_id: user.user_id, type: "video.color-grade", input: job.input, dispatch: 1 });

    const events = await readJobEvents(await stack.nats.connect(), job.id);
    expect(events).toMatchObject([{ seq: 1, type: "status", status: "queued" }]);
  });

  it("returns the same job for a repeated idempotency key, even when the requests race, and reserves once", async () => {
    const user = await stack.newUser(100);
    const file_id = await stack.addFile(user, "ready", testImage);
    const key = `key-${randomUUID()}`;
    const replies = await Promise.all(
      Array.from({ length: 5 }, () => create(user, { type: "image.resize", input: { file_id, width: 320, format: "png" } }, key)),
    );
    expect(new Set(replies.map((r) => r.job.id)).size).toBe(1);
    expect(replies.filter((r) => r.created)).toHaveLength(1);
    // The same body with its keys in another order is the same request.
    const again = await create(user, { input: { format: "png", width: 320, file_id }, type: "image.resize" } as never, key);
    expect(again).toMatchObject({ created: false, job: { id: replies[0]!.job.id } });
    expect(await stack.balance(user)).toMatchObject({ credits: 99, reserved: 1 });
    expect((await stack.client.call("job", "list", { limit: 20, offset: 0 }, { caller: user })).total).toBe(1);
  });

  it("answers every racing request with the same key with its one job, even when the credits cover only one", async () => {
    const user = await stack.newUser(1);
    const file_id = await stack.addFile(user, "ready", testImage);
    const key = `key-${randomUUID()}`;
    const replies = await Promise.allSettled(Array.from({ length: 5 }, () => create(user, { type: "image.resize", input: { file_id, width: 320 } }, key)));
    expect(replies.map((r) => (r.status === "fulfilled" ? "job" : (r.reason as { code?: string }).code))).toEqual(Array(5).fill("job"));
    const jobs = replies.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof create>>>).value);
    expect(new Set(jobs.map((r) => r.job.id)).size).toBe(1);
    expect(jobs.filter((r) => r.created)).toHaveLength(1);
    expect(await stack.balance(user)).toMatchObject({ credits: 0, reserved: 1 });
  });

  it("answers a keyed retry with its job after the input file is gone, and 409 for another body, without charging again", async () => {
    const user = await stack.newUser(100);
    const file_id = await stack.addFile(user, "ready", testImage);
    const key = `key-${randomUUID()}`;
    const first = await create(user, { type: "image.resize", input: { file_id, width: 320 } }, key);
    await stack.db.db.delete(files).where(eq(files.id, file_id));
    await expect(create(user, { type: "image.resize", input: { file_id, width: 320 } }, key)).resolves.toMatchObject({ created: false, job: { id: first.job.id } });
    await expect(create(user, { type: "image.resize", input: { file_id, width: 640 } }, key)).rejects.toMatchObject({ code: "IDEMPOTENCY_CONFLICT" });
    // A new key for the same input is a new job, and its file is gone.
    await expect(create(user, { type: "image.resize", input: { file_id, width: 320 } }, `key-${randomUUID()}`)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    expect(await stack.balance(user)).toMatchObject({ credits: 99, reserved: 1 });
  });

  it("answers 409 IDEMPOTENCY_CONFLICT when a key is reused with a different body", async () => {
    const user = await stack.newUser(100);
    const file_id = await stack.addFile(user, "ready", testImage);
    await create(user, { type: "image.resize", input: { file_id, width: 320 } }, "k1");
    await expect(create(user, { type: "image.resize", input: { file_id, width: 640 } }, "k1")).rejects.toMatchObject({
      code: "IDEMPOTENCY_CONFLICT",
      status: 409,
    });
    // Keys belong to a user: another user's "k1" is a new job.
    const other = await stack.newUser(100);
    const otherFile = await stack.addFile(other, "ready", testImage);
    expect((await create(other, { type: "image.resize", input: { file_id: otherFile, width: 640 } }, "k1")).created).toBe(true);
  });

  it("answers 422 with details for an unknown type, a bad input and a file that is not the caller's, reserving nothing", async () => {
    const user = await stack.newUser(100);
    const mine = await stack.addFile(user, "ready", testImage);
    const theirs = await stack.addFile(await stack.newUser(), "ready", testImage);

    await expect(create(user, { type: "video.teleport", input: { file_id: mine } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      status: 422,
      details: { type: "video.teleport", known_types: expect.arrayContaining(["image.resize", "video.color-grade"]) },
    });
    await expect(create(user, { type: "image.resize", input: { file_id: mine, quality: 500 } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { fields: expect.arrayContaining([expect.objectContaining({ path: "quality" }), expect.objectContaining({ path: "width" })]) },
    });
    await expect(create(user, { type: "image.resize", input: { file_id: theirs, width: 10 } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { field: "file_id", file_id: theirs, reason: "file not found" },
    });
    const lut = randomUUID();
    await expect(create(user, { type: "video.color-grade", input: { file_id: await stack.addFile(user), lut_file_id: lut } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { field: "lut_file_id", file_id: lut, reason: "file not found" },
    });
    const pending = await stack.addFile(user, "pending");
    await expect(create(user, { type: "image.thumbnail", input: { file_id: pending } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { field: "file_id", reason: "file not ready" },
    });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("answers 402 INSUFFICIENT_CREDITS when the credits run out, and queues nothing", async () => {
    const user = await stack.newUser(30);
    const file_id = await stack.addFile(user);
    await create(user, { type: "video.color-grade", input: { file_id } });
    await expect(create(user, { type: "video.color-grade", input: { file_id } })).rejects.toMatchObject({ code: "INSUFFICIENT_CREDITS", status: 402 });
    expect((await stack.client.call("job", "list", { limit: 20, offset: 0 }, { caller: user })).total).toBe(1);
  });

  it("refunds the reserved credits when a queued job is canceled, tells the workers, and answers 409 to a second cancel", async () => {
    const user = await stack.newUser(100);
    const file_id = await stack.addFile(user);
    const { job } = await create(user, { type: "audio.cleanup", input: { file_id } });
    const listener = await stack.nats.connect();
    const heard = new Promise<string>((resolve) => listener.subscribe(subjects.jobCancel(job.id), { max: 1, callback: (_e, m) => resolve(m.subject) }));
    await listener.flush();

    const reply = await stack.client.call("job", "cancel", { job_id: job.id }, { caller: user });
    expect(reply).toMatchObject({
      credits_refunded: 5,
      job: { status: "canceled", error: { code: "CANCELED" }, credits: { amount: 5, state: "released" }, completed_at: expect.any(String) },
    });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    expect(await heard).toBe(subjects.jobCancel(job.id));
    const events = await readJobEvents(await stack.nats.connect(), job.id);
    expect(events.at(-1)).toMatchObject({ type: "error", status: "canceled", error: { code: "CANCELED" } });

    await expect(stack.client.call("job", "cancel", { job_id: job.id }, { caller: user })).rejects.toMatchObject({ code: "INVALID_STATE", status: 409 });
    expect(await stack.balance(user)).toMatchObject({ credits: 100 });
  });

  it("keeps each user's jobs to themselves: another user's job is NOT_FOUND", async () => {
    const owner = await stack.newUser();
    const { job } = await create(owner, { type: "image.thumbnail", input: { file_id: await stack.addFile(owner, "ready", testImage) } });
    const stranger = await stack.newUser();
    await expect(stack.client.call("job", "get", { job_id: job.id }, { caller: stranger })).rejects.toMatchObject({ code: "NOT_FOUND", status: 404 });
    await expect(stack.client.call("job", "cancel", { job_id: job.id }, { caller: stranger })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect((await stack.client.call("job", "list", { limit: 20, offset: 0 }, { caller: stranger })).data).toEqual([]);
    expect(await stack.client.call("job", "get", { job_id: job.id }, { caller: owner })).toMatchObject({ id: job.id, status: "queued" });
    await expect(stack.client.call("job", "get", { job_id: job.id })).rejects.toMatchObject({ code: "UNAUTHORIZED", status: 401 });
  });

  it("lists the caller's jobs newest first, filtered by status, type and project, a page at a time", async () => {
    const user = await stack.newUser();
    const file_id = await stack.addFile(user, "ready", testImage);
    const project_id = (await stack.client.call("job", "createProject", { name: "list" }, { caller: user })).id;
    const a = (await create(user, { type: "image.resize", input: { file_id, width: 10 } })).job;
    const b = (await create(user, { type: "image.thumbnail", input: { file_id }, project_id })).job;
    const c = (await create(user, { type: "image.resize", input: { file_id, width: 20 }, project_id })).job;
    await stack.client.call("job", "cancel", { job_id: a.id }, { caller: user });
    const list = (q: Record<string, unknown>) => stack.client.call("job", "list", { limit: 20, offset: 0, ...q }, { caller: user });

    expect((await list({})).data.map((j) => j.id)).toEqual([c.id, b.id, a.id]);
    expect((await list({ type: "image.resize" })).data.map((j) => j.id)).toEqual([c.id, a.id]);
    expect((await list({ status: "canceled" })).data.map((j) => j.id)).toEqual([a.id]);
    expect((await list({ project_id })).data.map((j) => j.id)).toEqual([c.id, b.id]);
    expect(await list({ limit: 2, offset: 0 })).toMatchObject({ total: 3, limit: 2, offset: 0, has_more: true, data: [{ id: c.id }, { id: b.id }] });
    expect(await list({ limit: 2, offset: 2 })).toMatchObject({ total: 3, has_more: false, data: [{ id: a.id }] });
  });

  it("estimates a job's credits from its input and its files without queueing it: the number create reserves", async () => {
    const user = await stack.newUser(100);
    const file_id = await stack.addFile(user, "ready", { durationSeconds: 90 });
    const lut_file_id = await stack.addFile(user, "ready", { filename: "warm.cube", contentType: "text/plain", width: null, height: null, durationSeconds: null, frameRate: null });
    const input = { file_id, lut_file_id };
    expect(await stack.client.call("job", "estimate", { type: "video.color-grade", input }, { caller: user })).toEqual({
      type: "video.color-grade",
      credits: 60,
      description: "25 credits per started minute of graded video (the frame range when given), 30 with a LUT",
      work: { input_pixels: 640 * 480, output_pixels: 640 * 480, media_seconds: 90, output_seconds: 90 },
      eta_seconds: null,
    });
    expect((await create(user, { type: "video.color-grade", input })).job.credits.amount).toBe(60);
    await expect(stack.client.call("job", "estimate", { type: "image.resize", input: { file_id } }, { caller: user })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(stack.client.call("job", "estimate", { type: "image.resize", input: { file_id: randomUUID(), width: 10 } }, { caller: user })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { reason: "file not found" },
    });
  });

  it("refuses with 422 a tiny image asked to become 16384×16384 beyond the caller's tier, naming the limit, the tier and the value, and reserves nothing", async () => {
    const input = (file_id: string) => ({ file_id, width: 16384, height: 16384, format: "avif" });
    const pixel = { filename: "dot.png", contentType: "image/png", width: 1, height: 1, durationSeconds: null, frameRate: null };
    for (const tier of ["free", "pro"] as const) {
      const user = await stack.newUser(100, "user", tier);
      const file_id = await stack.addFile(user, "ready", pixel);
      const max = tier === "free" ? 4096 ** 2 : 8192 ** 2;
      const calls = [
        () => create(user, { type: "image.resize", input: input(file_id) }),
        () => stack.client.call("job", "estimate", { type: "image.resize", input: input(file_id) }, { caller: user }),
      ];
      for (const call of calls) {
        await expect(call()).rejects.toMatchObject({
          code: "INVALID_INPUT",
          status: 422,
          message: expect.stringContaining(`${tier} tier`),
          details: { reason: "over tier limit", limit: "max_output_pixels", tier, value: 16384 * 16384, max },
        });
      }
      expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
      expect((await stack.client.call("job", "list", { limit: 20, offset: 0 }, { caller: user })).total).toBe(0);
    }
    // Enterprise may, and pays for the pixels: one credit per started 2048×2048.
    const big = await stack.newUser(100, "user", "enterprise");
    const { job } = await create(big, { type: "image.resize", input: input(await stack.addFile(big, "ready", pixel)) });
    expect(job.credits).toEqual({ amount: 64, state: "reserved" });
    expect(await stack.balance(big)).toMatchObject({ credits: 36, reserved: 64 });
  });

  it("refuses a video or audio input longer than the caller's tier allows", async () => {
    const user = await stack.newUser(1000);
    const long = await stack.addFile(user, "ready", { durationSeconds: 20 * 60 });
    await expect(create(user, { type: "video.color-grade", input: { file_id: long } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { limit: "max_media_seconds", tier: "free", value: 1200, max: 600 },
    });
    await expect(create(user, { type: "audio.cleanup", input: { file_id: long } })).rejects.toMatchObject({ details: { limit: "max_media_seconds" } });
    const pro = await stack.newUser(1000, "user", "pro");
    expect((await create(pro, { type: "audio.cleanup", input: { file_id: await stack.addFile(pro, "ready", { durationSeconds: 20 * 60 }) } })).job.credits.amount).toBe(20);
  });

  it("reserves credits that grow with the work: an hour of video costs 60 times a second of it", async () => {
    const user = await stack.newUser(5000, "user", "pro");
    const grade = async (seconds: number, extra: Record<string, unknown> = {}) =>
      (await create(user, { type: "video.color-grade", input: { file_id: await stack.addFile(user, "ready", { durationSeconds: seconds }), ...extra } })).job.credits.amount;
    expect(await grade(1)).toBe(25);
    expect(await grade(61)).toBe(50);
    expect(await grade(3600)).toBe(1500);
    // A frame range is charged for what it grades: 250 frames at 25 fps of the hour.
    expect(await grade(3600, { frame_range: "1000-1250" })).toBe(25);
    const image = async (width: number, height: number) =>
      (await create(user, { type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width, height } })).job.credits.amount;
    expect(await image(2048, 2048)).toBe(1);
    expect(await image(8192, 8192)).toBe(16);
    expect(await stack.balance(user)).toMatchObject({ reserved: 25 + 50 + 1500 + 25 + 1 + 16 });
  });

  it("refuses with 422 a file that has no facts the job needs: a video with no duration, a file stored before uploads were measured", async () => {
    const user = await stack.newUser(100);
    const timeless = await stack.addFile(user, "ready", { durationSeconds: null });
    await expect(create(user, { type: "video.color-grade", input: { file_id: timeless } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { field: "file_id", reason: "no duration" },
    });
    const unmeasured = await stack.addFile(user, "ready", { ...testImage, width: null, height: null });
    await expect(create(user, { type: "image.thumbnail", input: { file_id: unmeasured } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      message: expect.stringContaining("uploaded again"),
      details: { field: "file_id", reason: "no picture size" },
    });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("refuses with 422 a file of a kind its field does not take, naming the field: an audio file to colour grade, a video to resize, an image as a segment's audio", async () => {
    const user = await stack.newUser(100);
    const audio = await stack.addFile(user, "ready", { filename: "a.wav", contentType: "audio/wav", width: null, height: null, frameRate: null, durationSeconds: 3 });
    await expect(create(user, { type: "video.color-grade", input: { file_id: audio } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      status: 422,
      details: { field: "file_id", kind: "audio", accepted: ["video"], reason: "wrong kind of file" },
    });
    await expect(create(user, { type: "image.resize", input: { file_id: await stack.addFile(user), width: 10 } })).rejects.toMatchObject({
      details: { field: "file_id", kind: "video", accepted: ["image"] },
    });
    const segments = [
      { start_time: 0, end_time: 1, audio_file_id: audio },
      { start_time: 1, end_time: 2, audio_file_id: await stack.addFile(user, "ready", testImage) },
    ];
    await expect(create(user, { type: "video.lipsync", input: { file_id: await stack.addFile(user), segments, mode: "dub" } })).rejects.toMatchObject({
      details: { field: "segments.1.audio_file_id", kind: "image", accepted: ["audio", "video"] },
    });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("checks a lip-sync's segments at enqueue: 422 INVALID_SEGMENT_CONFIG naming the bad one, and the tier's segment limit", async () => {
    const user = await stack.newUser(100);
    const video = await stack.addFile(user);
    const audio = await stack.addFile(user, "ready", { filename: "a.wav", contentType: "audio/wav", width: null, height: null, frameRate: null, durationSeconds: 3 });
    const seg = (start_time: number, end_time: number) => ({ start_time, end_time, audio_file_id: audio });
    await expect(create(user, { type: "video.lipsync", input: { file_id: video, mode: "dub", segments: [seg(0, 2), seg(1, 3)] } })).rejects.toMatchObject({
      code: "INVALID_SEGMENT_CONFIG",
      status: 422,
      details: { segment_index: 1, reason: "overlap" },
    });
    await expect(create(user, { type: "video.lipsync", input: { file_id: video, mode: "dub", segments: [seg(0, 1), seg(9, 11)] } })).rejects.toMatchObject({
      details: { segment_index: 1, reason: "outside the video" },
    });
    const four = [seg(0, 1), seg(1, 2), seg(2, 3), seg(3, 4)];
    await expect(create(user, { type: "video.lipsync", input: { file_id: video, mode: "dub", segments: four } })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { limit: "max_segments", value: 4, max: 3, tier: "free" },
    });
    const { job } = await create(user, { type: "video.lipsync", input: { file_id: video, mode: "dub", segments: four.slice(0, 3) } });
    expect(job.credits.amount).toBe(5);
  });

  it("hands a worker the job's project with its claim, for its outputs to join", async () => {
    const user = await stack.newUser(100);
    const project_id = (await stack.client.call("job", "createProject", { name: "claim" }, { caller: user })).id;
    const { job } = await create(user, { type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width: 10 }, project_id });
    expect(await stack.claimInTurn(job.id)).toMatchObject({ run: true, job: { id: job.id, project_id } });
  });

  it("shows job stats to admins only", async () => {
    const user = await stack.newUser();
    await expect(stack.client.call("job", "stats", {}, { caller: user })).rejects.toMatchObject({ code: "FORBIDDEN", status: 403 });
    await create(user, { type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width: 10 } });
    const admin = await stack.newUser(100, "admin");
    const stats = await stack.client.call("job", "stats", {}, { caller: admin });
    expect(stats.active_jobs).toBeGreaterThan(0);
    expect(stats).toMatchObject({ completed_jobs_today: 0, average_processing_time_minutes: null });
  });

  it("reports its database and NATS as up", async () => {
    expect(await stack.client.call("job", "health", {})).toMatchObject({
      status: "up",
      service: "job",
      checks: { database: { status: "up" }, nats: { status: "up" } },
    });
  });

  // No events consumer runs here: the worker's events are never applied to the row, as when the broker lost them first.
  it("ends a job above the worker's last event after the broker lost its store, though the row never had that event", async () => {
    const user = await stack.newUser(100);
    const { job } = await create(user, { type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width: 10 } });
    const claim = await stack.claimInTurn(job.id);
    const worker = createEventPublisher(await stack.nats.connect());
    for (let i = 1; i <= 3; i++) await worker.publish(job.id, { type: "progress", progress: i * 10 }, { floor: claim.job!.last_event_seq! });
    const watched = await readJobEvents(stack.deps.nc, job.id);
    expect(watched.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    // What nats-server back with an empty store looks like: the stream made anew, with nothing in it.
    await stack.jsm.streams.delete(streams.jobEvents.name);
    await ensureStreams(stack.deps.nc);

    const outcome = { status: "succeeded" as const, result: { files: [] } };
    await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome, last_event_seq: 5 });
    // A watcher drops what is not past the last seq it saw: the ending must be past 5.
    expect((await readJobEvents(stack.deps.nc, job.id)).map((e) => [e.seq, e.type])).toEqual([[6, "result"]]);
  });
});
