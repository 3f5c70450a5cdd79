import { randomUUID } from "node:crypto";
import type { Caller } from "@cutroom/contracts";
import { readJobEvents } from "@cutroom/runtime";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

describe("job batches, names and metadata (issue 15)", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack();
  });
  afterAll(async () => stack?.stop());

  const resize = async (user: Caller, width = 320) => ({ type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width } });
  const batch = (user: Caller, jobs: unknown[], idempotency_key?: string) =>
    stack.client.call("job", "createBatch", { body: { jobs } as never, ...(idempotency_key ? { idempotency_key } : {}) }, { caller: user });
  const refusal = (p: Promise<unknown>) => p.then(() => expect.unreachable("the batch was accepted"), (err) => err as { status: number; code: string; message: string; details: Record<string, unknown> });
  const jobsOf = async (user: Caller) => (await stack.db.sql`select id from jobs.jobs where user_id = ${user.user_id}`).length;
  const reservesOf = async (user: Caller) => (await stack.client.call("billing", "ledger", { user_id: user.user_id, limit: 100, offset: 0 })).data.filter((e) => e.kind === "reserve").length;

  it("creates every job of a batch in one transaction, in order, with their names and metadata", async () => {
    const user = await stack.newUser(100);
    const body = await resize(user);
    const answer = await batch(user, [
      { ...body, display_name: "first cut", metadata: { scene: 1, take: "a" } },
      { ...body, input: { ...body.input, width: 321 } },
      { ...body, input: { ...body.input, width: 322 }, display_name: "third" },
    ]);
    expect(answer.created).toBe(true);
    expect(answer.jobs.map((j) => [j.status, j.input.width, j.display_name, j.metadata])).toEqual([
      ["queued", 320, "first cut", { scene: 1, take: "a" }],
      ["queued", 321, null, {}],
      ["queued", 322, "third", {}],
    ]);
    expect(answer.rate).toMatchObject({ limit: 10, remaining: 7 });
    const [times] = await stack.db.sql`select count(distinct created_at)::int as n from jobs.jobs where user_id = ${user.user_id}`;
    expect(times!.n).toBe(1);
    expect(await stack.balance(user)).toMatchObject({ credits: 97, reserved: 3 });
    expect(await stack.client.call("job", "get", { job_id: answer.jobs[0]!.id }, { caller: user })).toMatchObject({ display_name: "first cut", metadata: { scene: 1, take: "a" } });
  });

  it("refuses a batch with one bad input whole, naming jobs[i]: no job, no reservation", async () => {
    const user = await stack.newUser(100);
    const body = await resize(user);
    const err = await refusal(batch(user, [body, { ...body, input: { ...body.input, width: -5 } }, body]));
    expect(err).toMatchObject({ status: 422, code: "INVALID_INPUT", details: { index: 1 } });
    expect(err.message).toMatch(/^jobs\[1\]: /);
    expect((err.details.fields as { path: string }[]).map((f) => f.path)).toEqual(["jobs[1].input.width"]);
    const missing = await refusal(batch(user, [body, body, { type: "image.resize", input: { file_id: randomUUID(), width: 10 } }]));
    expect(missing).toMatchObject({ status: 422, details: { field: "jobs[2].input.file_id", index: 2 } });
    expect(await jobsOf(user)).toBe(0);
    expect(await reservesOf(user)).toBe(0);
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("refuses a batch the balance cannot pay whole (402 with the batch's total): nothing reserved, no rate slot taken", async () => {
    const user = await stack.newUser(2);
    const body = await resize(user);
    const err = await refusal(batch(user, [body, body, body]));
    expect(err).toMatchObject({ status: 402, code: "INSUFFICIENT_CREDITS", details: { required: 3, available: 2 } });
    expect(await jobsOf(user)).toBe(0);
    expect(await reservesOf(user)).toBe(0);
    expect(await stack.balance(user)).toMatchObject({ credits: 2, reserved: 0 });
    // The refused batch took none of the window: two jobs still leave eight of ten.
    expect((await batch(user, [body, body])).rate).toMatchObject({ remaining: 8 });
  });

  it("refuses a batch that does not fit the rate window whole (429), taking none of it", async () => {
    const user = await stack.newUser(100);
    const body = await resize(user);
    expect((await batch(user, Array.from({ length: 8 }, () => body))).jobs).toHaveLength(8);
    const err = await refusal(batch(user, [body, body, body]));
    expect(err).toMatchObject({ status: 429, code: "RATE_LIMITED", details: { limit: 10, remaining: 2, requested: 3 } });
    expect(await jobsOf(user)).toBe(8);
    expect((await batch(user, [body, body])).rate).toMatchObject({ remaining: 0 });
  });

  it("replays a keyed batch with the same jobs, charged once, and answers another body under the key 409", async () => {
    const user = await stack.newUser(100);
    const body = await resize(user);
    const key = `batch-${randomUUID()}`;
    const jobs = [body, { ...body, metadata: { n: 2 } }];
    const first = await batch(user, jobs, key);
    const again = await batch(user, jobs, key);
    expect(again.created).toBe(false);
    expect(again.jobs.map((j) => j.id)).toEqual(first.jobs.map((j) => j.id));
    expect(await stack.balance(user)).toMatchObject({ credits: 98, reserved: 2 });
    expect(await refusal(batch(user, [body, { ...body, metadata: { n: 3 } }], key))).toMatchObject({ status: 409, code: "IDEMPOTENCY_CONFLICT" });
    expect(await refusal(batch(user, [...jobs, body], key))).toMatchObject({ status: 409 });
    // A single job under the same key is a job of its own: the batch's jobs take keys no header can send.
    expect((await stack.client.call("job", "create", { body, idempotency_key: key }, { caller: user })).created).toBe(true);
    expect(await jobsOf(user)).toBe(3);
  });

  it("finds jobs by part of their name and by exact top-level metadata values", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const body = await resize(user);
    const made = await batch(user, [
      { ...body, display_name: "Hero shot 100%", metadata: { env: "prod", scene: 4, draft: false } },
      { ...body, display_name: "B-roll", metadata: { env: "staging", scene: 4 } },
      body,
    ]);
    const list = (q: Record<string, unknown>) => stack.client.call("job", "list", { limit: 10, offset: 0, ...q }, { caller: user }).then((p) => p.data.map((j) => j.id));
    const [hero, broll] = made.jobs.map((j) => j.id);
    expect(await list({ metadata: { env: "prod" } })).toEqual([hero]);
    expect((await list({ metadata: { scene: "4" } })).sort()).toEqual([hero, broll].sort());
    expect(await list({ metadata: { scene: "4", env: "staging" } })).toEqual([broll]);
    expect(await list({ metadata: { draft: "false" } })).toEqual([hero]);
    expect(await list({ metadata: { env: "nowhere" } })).toEqual([]);
    expect(await list({ display_name: "hero" })).toEqual([hero]);
    // % and _ are letters here, not wildcards.
    expect(await list({ display_name: "100%" })).toEqual([hero]);
    expect(await list({ display_name: "_" })).toEqual([]);
  });
});

describe("queue places and etas of dispatched jobs (ADR 037)", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing: { queuePlacesIntervalMs: 150 } });
  });
  afterAll(async () => stack?.stop());

  it("counts a waiting job's place down as the jobs ahead are claimed, with an eta while queued and none once running", async () => {
    const user = await stack.newUser(100, "user", "enterprise");
    const file = await stack.addFile(user, "ready", testImage);
    const body = (width: number) => ({ type: "image.thumbnail", input: { file_id: file, width } });
    const claim = (job_id: string) => stack.client.call("job", "claim", { job_id, dispatch: 1, worker: "test" });
    const get = (job_id: string) => stack.client.call("job", "get", { job_id }, { caller: user });
    const dispatched = async (ids: string[]) => {
      for (const id of ids) await vi.waitFor(async () => expect((await stack.db.sql`select dispatched_at from jobs.jobs where id = ${id}`)[0]!.dispatched_at).not.toBeNull(), { timeout: 5000, interval: 20 });
    };

    // One run of the type first, so its run time is known.
    const done = await stack.client.call("job", "create", { body: body(64) }, { caller: user });
    await dispatched([done.job.id]);
    expect(await claim(done.job.id)).toMatchObject({ run: true });
    await stack.client.call("job", "finish", { job_id: done.job.id, dispatch: 1, outcome: { status: "succeeded", result: { files: [] } } });

    const backlog: string[] = [];
    for (let i = 0; i < 5; i++) backlog.push((await stack.client.call("job", "create", { body: body(65 + i) }, { caller: user })).job.id);
    await dispatched(backlog);
    const last = backlog.at(-1)!;
    expect(await get(last)).toMatchObject({ status: "queued", queue_position: 5, queue_reason: "waiting_for_worker", eta_seconds: expect.any(Number) });
    expect((await get(backlog[0]!)).queue_position).toBe(1);
    const listed = await stack.client.call("job", "list", { limit: 10, offset: 0, status: "queued" }, { caller: user });
    expect(listed.data.map((j) => j.queue_position)).toEqual([5, 4, 3, 2, 1]);

    const places = async () => (await readJobEvents(await stack.nats.connect(), last)).flatMap((e) => (e.type === "status" && e.queue_position ? [e.queue_position] : []));
    // Told once it has waited an interval: 5 (4 to 7 are told as one step).
    await vi.waitFor(async () => expect(await places()).toEqual([5]), { timeout: 5000, interval: 50 });
    for (const [i, id] of backlog.slice(0, 4).entries()) {
      expect(await claim(id)).toMatchObject({ run: true });
      const expected = [5, 3, 2, 1].slice(0, i === 0 ? 1 : i + 1);
      // Moving from 5 to 4 stays within one step and is not told; each place from 3 down is.
      if (i > 0) await vi.waitFor(async () => expect(await places()).toEqual(expected), { timeout: 5000, interval: 50 });
      else expect((await get(last)).queue_position).toBe(4);
    }
    const events = await readJobEvents(await stack.nats.connect(), last);
    expect(events.filter((e) => e.type === "status" && e.queue_position).every((e) => e.type === "status" && e.queue_reason === "waiting_for_worker" && typeof e.eta_seconds === "number")).toBe(true);

    expect(await claim(last)).toMatchObject({ run: true });
    expect(await get(last)).toMatchObject({ status: "running", queue_position: null, queue_reason: null, eta_seconds: null });
  });

  it("places a high-priority job ahead of older normal ones, in the order claims take them (ADR 039)", async () => {
    const user = await stack.newUser(100, "user", "enterprise");
    const file = await stack.addFile(user, "ready", testImage);
    const create = async (width: number, priority?: "high") =>
      (await stack.client.call("job", "create", { body: { type: "image.resize", input: { file_id: file, width }, ...(priority ? { priority } : {}) } }, { caller: user })).job.id;
    const normal = [await create(100), await create(101)];
    const high = await create(102, "high");
    const places = async () => Promise.all([...normal, high].map(async (job_id) => (await stack.client.call("job", "get", { job_id }, { caller: user })).queue_position));
    await vi.waitFor(async () => expect(await places()).toEqual([2, 3, 1]), { timeout: 5000, interval: 50 });
  });
});
