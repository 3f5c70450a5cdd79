import { randomUUID } from "node:crypto";
import { JobDispatch, streams, subjects, type Caller } from "@cutroom/contracts";
import { orphanReservations } from "@cutroom/ledger";
import { createEventPublisher, createRpcClient, ensureStreams, readJobEvents, type JobEventPublisher } from "@cutroom/runtime";
import { silentLogger } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createJobHandlers } from "./app.ts";
import { getJob } from "./job-store.ts";
import { releaseOrphanReservations } from "./reconciler.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

const timing = { reconcileIntervalMs: 100, dispatchGraceMs: 300, redispatchAfterMs: 60_000, orphanGraceMs: 1500 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("job creation is one transaction: no reservation without a job, answered once the row is committed", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true });
  });
  afterAll(async () => stack?.stop());

  const resize = async (user: Caller, width = 320) => ({ type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width } });
  const ledgerOf = async (user: Caller) => (await stack.client.call("billing", "ledger", { user_id: user.user_id, limit: 100, offset: 0 })).data;
  const orphansOf = async (user: Caller) => (await orphanReservations(stack.db.db)).filter((o) => o.userId === user.user_id);

  it("leaves no reservation when the job's insert fails, even with billing unreachable by then", async () => {
    const user = await stack.newUser(100);
    const body = await resize(user, 317);
    // A job insert that stalls, then fails: billing goes away meanwhile, as in a crash between the two steps.
    await stack.db.sql.unsafe(`
      create or replace function jobs.refuse_test_insert() returns trigger language plpgsql as $$
      begin
        if new.input->>'width' = '317' then perform pg_sleep(0.5); raise exception 'job insert refused by the test'; end if;
        return new;
      end $$;
      create trigger refuse_test_insert before insert on jobs.jobs for each row execute function jobs.refuse_test_insert();`);
    try {
      const creating = stack.client.call("job", "create", { body }, { caller: user });
      creating.catch(() => {});
      await vi.waitFor(
        async () => {
          const [sleeping] = await stack.db.sql`select count(*)::int as n from pg_stat_activity where wait_event = 'PgSleep' and datname = current_database()`;
          expect(sleeping!.n).toBe(1);
        },
        { timeout: 5000, interval: 20 },
      );
      const billingUp = await stack.billingDown();
      await expect(creating).rejects.toMatchObject({ status: 500 });
      billingUp();
    } finally {
      await stack.db.sql.unsafe("drop trigger refuse_test_insert on jobs.jobs; drop function jobs.refuse_test_insert()");
    }

    expect(await orphansOf(user)).toEqual([]);
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    expect((await ledgerOf(user)).map((e) => e.kind)).toEqual(["grant"]);
    expect((await stack.client.call("job", "list", { limit: 20, offset: 0 }, { caller: user })).total).toBe(0);
  });

  it("leaves no orphan when the credit ledger stalls past the RPC timeout, and a retry with the key finds the one job", async () => {
    const user = await stack.newUser(100);
    const body = await resize(user);
    const key = `stall-${randomUUID()}`;
    const patient = createRpcClient(await stack.nats.connect(), { timeoutMs: 15_000 });
    // The account row held for longer than job-service's 5 s RPC timeout (the billing stall of the kill test).
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const stall = stack.db.sql.begin(async (tx) => {
      await tx`select 1 from billing.accounts where user_id = ${user.user_id} for update`;
      locked();
      await sleep(6000);
    });
    await isLocked;
    const first = await Promise.allSettled([patient.call("job", "create", { body, idempotency_key: key }, { caller: user })]);
    await stall;
    await sleep(300);

    expect(await orphansOf(user)).toEqual([]);
    const retry = await stack.client.call("job", "create", { body, idempotency_key: key }, { caller: user });
    if (first[0]!.status === "fulfilled") expect(first[0]!.value.job.id).toBe(retry.job.id);
    expect((await ledgerOf(user)).filter((e) => e.kind === "reserve")).toEqual([expect.objectContaining({ job_id: retry.job.id, amount: -1 })]);
    expect(await stack.balance(user)).toMatchObject({ credits: 99, reserved: 1 });
  }, 20_000);

  it("creates nothing when the account stays locked past the caller's RPC timeout: the caller's 503 is the truth", async () => {
    const user = await stack.newUser(100);
    const body = await resize(user);
    const impatient = createRpcClient(await stack.nats.connect(), { timeoutMs: 1500 });
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const stall = stack.db.sql.begin(async (tx) => {
      await tx`select 1 from billing.accounts where user_id = ${user.user_id} for update`;
      locked();
      await sleep(3000);
    });
    await isLocked;
    // No Idempotency-Key: a client that retries this 503 makes a new job, so this one must not exist.
    await expect(impatient.call("job", "create", { body }, { caller: user })).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", status: 503 });
    await stall;
    // Time for a reservation that waited on the lock to commit, were it still waiting.
    await sleep(700);

    expect(await stack.db.sql`select id from jobs.jobs where user_id = ${user.user_id}`).toEqual([]);
    expect((await ledgerOf(user)).map((e) => e.kind)).toEqual(["grant"]);
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("creates nothing when the job's insert is slow past the caller's RPC timeout", async () => {
    const user = await stack.newUser(100);
    const body = await resize(user, 318);
    await stack.db.sql.unsafe(`
      create or replace function jobs.slow_test_insert() returns trigger language plpgsql as $$
      begin
        if new.input->>'width' = '318' then perform pg_sleep(2.5); end if;
        return new;
      end $$;
      create trigger slow_test_insert before insert on jobs.jobs for each row execute function jobs.slow_test_insert();`);
    try {
      const impatient = createRpcClient(await stack.nats.connect(), { timeoutMs: 1500 });
      await expect(impatient.call("job", "create", { body }, { caller: user })).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", status: 503 });
      await sleep(1700);
    } finally {
      await stack.db.sql.unsafe("drop trigger slow_test_insert on jobs.jobs; drop function jobs.slow_test_insert()");
    }

    expect(await stack.db.sql`select id from jobs.jobs where user_id = ${user.user_id}`).toEqual([]);
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("reserves once for one Idempotency-Key across two replicas, concurrent or one after the other, and answers the same job", async () => {
    const user = await stack.newUser(1);
    const body = await resize(user);
    const key = `replicas-${randomUUID()}`;
    const replicas = [createJobHandlers(stack.deps), createJobHandlers(stack.deps)];
    const ctx = () => ({ requestId: randomUUID(), caller: user, log: silentLogger() });
    const concurrent = await Promise.all(Array.from({ length: 6 }, (_, i) => replicas[i % 2]!.create({ body, idempotency_key: key }, ctx())));
    const sequential = [];
    for (const replica of replicas) sequential.push(await replica.create({ body, idempotency_key: key }, ctx()));

    const ids = new Set([...concurrent, ...sequential].map((r) => r.job.id));
    expect(ids.size).toBe(1);
    expect([...concurrent, ...sequential].filter((r) => r.created)).toHaveLength(1);
    const [id] = ids;
    // Only the credits of one job (1 of 1) were ever held: no reserve-and-release of a loser.
    expect((await ledgerOf(user)).map((e) => [e.kind, e.job_id])).toEqual([["reserve", id], ["grant", null]]);
    expect(await stack.balance(user)).toMatchObject({ credits: 0, reserved: 1 });
  });

  it("answers as soon as the job is committed while JetStream publishes hang, and the reconciler dispatches it later", async () => {
    const user = await stack.newUser(100);
    const nc = await stack.nats.connect();
    // No JOBS stream, and something on its subjects that never acks: every dispatch publish hangs until it times out.
    await stack.jsm.streams.delete(streams.jobs.name);
    const swallow = nc.subscribe(subjects.jobRunQueue("*"), { callback: () => {} });
    await nc.flush();
    let jobId: string;
    try {
      // A hanging publish gives up after JetStream's 5 s: a caller that waits 4 s is answered only if creation does not wait for it.
      const impatient = createRpcClient(await stack.nats.connect(), { timeoutMs: 4000 });
      const { job, created } = await impatient.call("job", "create", { body: { type: "audio.cleanup", input: { file_id: await stack.addFile(user) } } }, { caller: user });
      expect({ created, status: job.status, credits: job.credits }).toEqual({ created: true, status: "queued", credits: { amount: 5, state: "reserved" } });
      jobId = job.id;
      expect(await getJob(stack.db.db, job.id)).toMatchObject({ status: "queued", dispatchedAt: null });
    } finally {
      swallow.unsubscribe();
      await ensureStreams(nc);
    }

    await vi.waitFor(async () => expect(await stack.queued("audio", "audio.cleanup")).toBe(1), { timeout: 15_000, interval: 100 });
    const stored = await stack.jsm.streams.getMessage(streams.jobs.name, { last_by_subj: subjects.jobRun("audio", "audio.cleanup") });
    expect(JobDispatch.parse(stored!.json())).toMatchObject({ job_id: jobId, dispatch: 1 });
    expect(await getJob(stack.db.db, jobId)).toMatchObject({ status: "queued", dispatchCount: 1, dispatchedAt: expect.any(Date) });
    expect((await readJobEvents(await stack.nats.connect(), jobId))[0]).toMatchObject({ seq: 1, type: "status", status: "queued" });
  }, 30_000);

  it("never stores the queued event after running when its publish stalls past the dispatch grace", async () => {
    const user = await stack.newUser(100);
    let unstall!: () => void;
    const stalled = new Promise<void>((resolve) => {
      unstall = resolve;
    });
    // Another replica's publisher, whose queued event is held up (a broker stall) until the job runs.
    const publisher = createEventPublisher(await stack.nats.connect());
    const events: JobEventPublisher = {
      publish: async (jobId, event, opts) => ("status" in event && event.status === "queued" && (await stalled), publisher.publish(jobId, event, opts)),
    };
    const replica = createJobHandlers({ ...stack.deps, events });
    const { job } = await replica.create({ body: await resize(user) }, { requestId: randomUUID(), caller: user, log: silentLogger() });
    // The reconciler dispatches it after dispatchGraceMs; a worker claims it and running is stored.
    await vi.waitFor(async () => expect(await getJob(stack.db.db, job.id)).toMatchObject({ dispatchCount: 1 }), { timeout: 5000, interval: 50 });
    expect(await stack.claimInTurn(job.id)).toMatchObject({ run: true, job: { id: job.id } });
    unstall();
    await sleep(500);

    expect((await readJobEvents(await stack.nats.connect(), job.id)).map((e) => [e.type, "status" in e ? e.status : null])).toEqual([["status", "running"]]);
  });

  it("releases a reservation made by hand for a job that does not exist, once past the grace, and leaves real jobs' reservations alone", async () => {
    const user = await stack.newUser(100);
    const { job } = await stack.client.call("job", "create", { body: await resize(user) }, { caller: user });
    const reserveBare = async (amount: number) => {
      const job_id = randomUUID();
      await stack.client.call("billing", "reserve", { user_id: user.user_id, job_id, amount });
      return job_id;
    };
    const log = silentLogger();

    const first = await reserveBare(30);
    expect(await orphansOf(user)).toEqual([expect.objectContaining({ jobId: first, amount: 30 })]);
    // Younger than the grace: spared (an older job-service's insert may still be on its way).
    expect(await releaseOrphanReservations({ db: stack.db.db, log, timing: { ...stack.deps.timing, orphanGraceMs: 60_000 } })).toBe(0);
    expect(await releaseOrphanReservations({ db: stack.db.db, log, timing: { ...stack.deps.timing, orphanGraceMs: 0 } })).toBe(1);
    expect(await stack.balance(user)).toMatchObject({ credits: 99, reserved: 1 });

    // The running reconciler does the same on its own.
    const second = await reserveBare(40);
    expect(await stack.balance(user)).toMatchObject({ credits: 59, reserved: 41 });
    await vi.waitFor(async () => expect(await orphansOf(user)).toEqual([]), { timeout: 10_000, interval: 100 });
    expect(await stack.balance(user)).toMatchObject({ credits: 99, reserved: 1 });
    const ledger = await ledgerOf(user);
    expect(ledger.filter((e) => e.kind === "release").map((e) => e.job_id).sort()).toEqual([first, second].sort());
    expect(await getJob(stack.db.db, job.id)).toMatchObject({ creditState: "reserved" });
  });

  it("sweeps only the last day's reservations: an older one without a job is left to a one-off check", async () => {
    const user = await stack.newUser(100);
    const job_id = randomUUID();
    await stack.client.call("billing", "reserve", { user_id: user.user_id, job_id, amount: 10 });
    await stack.db.sql`update billing.ledger set created_at = now() - interval '2 days' where job_id = ${job_id}`;

    await releaseOrphanReservations({ db: stack.db.db, log: silentLogger(), timing: { ...stack.deps.timing, orphanGraceMs: 0 } });
    expect(await orphansOf(user)).toEqual([expect.objectContaining({ jobId: job_id, amount: 10 })]);
    expect(await stack.balance(user)).toMatchObject({ credits: 90, reserved: 10 });
  });
});
