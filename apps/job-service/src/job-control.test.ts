import { subjects, type Caller, type JobEvent } from "@cutroom/contracts";
import { readJobEvents } from "@cutroom/runtime";
import { sqlTag as sql } from "@cutroom/db";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { getJob } from "./job-store.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

// Short, configured backoffs: the tests assert what the feature defines, at its own scale (ADR 039). Aging keeps
// its default: two enqueues in a row must fall inside it however loaded the machine (2 s did not on CI).
const control = { retry: { baseMs: 300, maxMs: 5000, jitter: 0.2 }, agingMs: 60_000 };
const timing = { leaseMs: 5000, reconcileIntervalMs: 100, redispatchAfterMs: 30_000, dispatchGraceMs: 300, control };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("job control: retries, priorities and deadlines, on real Postgres and NATS", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ timing, lifecycle: true });
  });
  afterAll(async () => stack?.stop());
  // Every test's jobs share the image queue, whose turns go to the job served first: none is left for the next test.
  afterEach(async () => {
    await stack.db.db.execute(sql`update jobs.jobs set status = 'canceled', completed_at = now() where status in ('queued', 'running')`);
  });

  const enqueue = async (caller: Caller, extra: Record<string, unknown> = {}, fileId?: string) => {
    const { job } = await stack.client.call("job", "create", { body: { type: "image.resize", input: { file_id: fileId ?? (await stack.addFile(caller, "ready", testImage)), width: 64 }, ...extra } }, { caller });
    return job;
  };
  const claim = (job_id: string, dispatch = 1) => stack.client.call("job", "claim", { job_id, dispatch, worker: "w1" });
  const row = async (id: string) => (await getJob(stack.db.db, id))!;
  const events = async (id: string) => readJobEvents(await stack.nats.connect(), id);
  const fail = (job_id: string, dispatch: number, retryable: boolean) =>
    stack.client.call("job", "finish", { job_id, dispatch, provider_cost_usd: 0.25, outcome: { status: "failed", error: { code: "PROVIDER_ERROR", message: "HTTP 503" }, retryable } });

  it("puts a job failing retryably back queued after a doubling backoff, and it succeeds on its third attempt", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const job = await enqueue(user);
    for (let attempt = 1; attempt <= 2; attempt++) {
      // Each attempt comes by a dispatch of its own, once its backoff is over.
      await vi.waitFor(async () => expect((await row(job.id)).dispatchCount).toBe(attempt), { timeout: 10_000, interval: 50 });
      expect(await claim(job.id, attempt)).toMatchObject({ run: true, job: { id: job.id, attempt } });
      expect(await fail(job.id, attempt, true)).toEqual({ applied: true, status: "queued" });
      expect(await row(job.id)).toMatchObject({ status: "queued", creditState: "reserved", dispatchedAt: null });
    }
    await vi.waitFor(async () => expect((await row(job.id)).dispatchCount).toBe(3), { timeout: 10_000, interval: 50 });
    expect(await claim(job.id, 3)).toMatchObject({ run: true, job: { attempt: 3 } });
    const outcome = { status: "succeeded" as const, result: { files: [] } };
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 3, outcome, provider_cost_usd: 0.5 })).toEqual({ applied: true, status: "succeeded" });

    const all = await events(job.id);
    const at = (e: JobEvent) => Date.parse(e.timestamp);
    const retries = all.filter((e) => e.type === "status" && e.status === "queued" && e.message?.includes("retrying"));
    const runs = all.filter((e) => e.type === "status" && e.status === "running");
    expect(retries.map((e) => (e as { message: string }).message)).toEqual([expect.stringMatching(/^attempt 1 of 3 failed \(PROVIDER_ERROR: HTTP 503\); retrying in 0\.[34] s$/), expect.stringMatching(/^attempt 2 of 3 failed .*retrying in 0\.[67] s$/)]);
    // The next attempt starts no sooner than the backoff said: 300 ms, then 600 ms.
    expect(at(runs[1]!) - at(retries[0]!)).toBeGreaterThanOrEqual(300);
    expect(at(runs[2]!) - at(retries[1]!)).toBeGreaterThanOrEqual(600);
    // What every attempt's model runs cost, the failed ones' included.
    expect(await row(job.id)).toMatchObject({ status: "succeeded", attempts: 3, creditState: "captured", providerCostUsd: 1 });
  });

  it("fails a job at once on a failure no retry can cure, or on its last attempt, and releases its credits once", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const job = await enqueue(user);
    await vi.waitFor(async () => expect((await row(job.id)).dispatchCount).toBe(1), { timeout: 10_000, interval: 50 });
    await claim(job.id, 1);
    expect(await fail(job.id, 1, false)).toEqual({ applied: true, status: "failed" });
    expect(await row(job.id)).toMatchObject({ status: "failed", attempts: 1, creditState: "released" });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("serves the next job of the queue by a message whose own job another claim took while it waited, so no turn is lost", async () => {
    const user = await stack.newUser(100, "user", "enterprise");
    const first = await enqueue(user);
    const second = await enqueue(user);
    // Settled first: a dispatch mark or a queued event's seq still to be written to the first job's row
    // would wait behind the transaction below, each holding one of the few connections the stack's
    // services share with this test, and the claim (or the test's own look) then found none free.
    for (const job of [first, second]) {
      await vi.waitFor(async () => expect(await row(job.id)).toMatchObject({ dispatchCount: 1, lastEventSeq: 1 }), { timeout: 10_000, interval: 50 });
    }
    let claimed: Promise<unknown> | undefined;
    await stack.db.db.transaction(async (tx) => {
      // The second job's message is being claimed and serves the first job, ahead of it: not committed yet.
      await tx.execute(sql`update jobs.jobs set status = 'running', attempts = attempts + 1, started_at = now(),
        lease_until = now() + interval '1 minute', claimed_dispatch = 1, claimed_via = ${second.id}::uuid where id = ${first.id}::uuid`);
      // Meanwhile the first job's own message comes: its claim waits for that row.
      claimed = claim(first.id, 1);
      await vi.waitFor(
        async () => {
          const [waiting] = await stack.db.db.execute<{ n: number }>(sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%with hint as%'`);
          expect(waiting!.n).toBe(1);
        },
        { timeout: 10_000, interval: 20 },
      );
    });
    // Its turn goes to the second job, whose own message was spent on the first.
    expect(await claimed).toMatchObject({ run: true, job: { id: second.id } });
    expect(await row(second.id)).toMatchObject({ status: "running", claimedVia: first.id });
  });

  it("serves a high-priority job before the normal ones queued ahead of it, by the first message its queue hands a worker", async () => {
    const user = await stack.newUser(100, "user", "enterprise");
    const normal = [await enqueue(user), await enqueue(user), await enqueue(user)];
    // Of the same file as the first: the job's own access differs only in the job its output goes to.
    const high = await enqueue(user, { priority: "high" }, normal[0]!.input.file_id as string);
    expect(high).toMatchObject({ priority: "high" });
    // Settled as a worker finds them (as in the aging test below): a claim skips a row another write holds.
    for (const job of [...normal, high]) {
      await vi.waitFor(async () => expect(await row(job.id)).toMatchObject({ dispatchCount: 1 }), { timeout: 10_000, interval: 50 });
    }
    // What the claims ask storage to sign: the access a claim asks early, for its message's job (ADR 057), must not go to another job.
    const asked: { job_id: string; file_ids: string[] }[] = [];
    const nc = await stack.nats.connect();
    try {
      nc.subscribe(subjects.rpc("storage", "jobAccess"), { callback: (_err, msg) => void asked.push(msg.json<{ body: { job_id: string; file_ids: string[] } }>().body) });
      await nc.flush();
      // The first normal job's message: the claim hands over the high one, which is ahead of it.
      expect(await claim(normal[0]!.id, 1)).toMatchObject({ run: true, job: { id: high.id } });
      // Asked early for the message's job, then for the job handed over, of the same file.
      await vi.waitFor(() => expect(asked.map((a) => a.job_id)).toEqual([normal[0]!.id, high.id]), { timeout: 5000, interval: 20 });
      expect(asked.map((a) => a.file_ids)).toEqual([[normal[0]!.input.file_id], [normal[0]!.input.file_id]]);
    } finally {
      await nc.close();
    }
    expect(await row(high.id)).toMatchObject({ status: "running", claimedVia: normal[0]!.id });
    // The high job's own message later is a turn for the first normal job.
    expect(await claim(high.id, 1)).toMatchObject({ run: true, job: { id: normal[0]!.id } });
  });

  it("never starves a low-priority job: once it waited the aging interval longer, it goes before younger normal ones", async () => {
    const user = await stack.newUser(100, "user", "enterprise");
    const low = await enqueue(user, { priority: "low" });
    const younger = await enqueue(user);
    // Settled as a worker finds them: dispatched. A claim skips a row another write holds
    // for that moment (skip locked), and would then serve the low job in the younger one's place.
    for (const job of [low, younger]) {
      await vi.waitFor(async () => expect(await row(job.id)).toMatchObject({ dispatchCount: 1 }), { timeout: 10_000, interval: 50 });
    }
    // Within the aging interval a normal job created after it still goes first.
    expect(await claim(low.id, 1)).toMatchObject({ run: true, job: { id: younger.id } });
    // As if it had waited the aging interval and a little more: its row made that much older, no minute slept.
    const waited = (control.agingMs + 100) / 1000;
    await stack.db.db.execute(sql`update jobs.jobs set created_at = created_at - make_interval(secs => ${waited}),
      run_order = run_order - make_interval(secs => ${waited}) where id = ${low.id}::uuid`);
    const later = await enqueue(user);
    expect(await claim(later.id, 1)).toMatchObject({ run: true, job: { id: low.id } });
  });

  it("refuses high priority to the free tier with 403", async () => {
    const user = await stack.newUser(100, "user", "free");
    await expect(enqueue(user, { priority: "high" })).rejects.toMatchObject({ code: "FORBIDDEN", details: { reason: "priority", tier: "free" } });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("fails a job no worker started within start_within_s with EXPIRED and releases its credits", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const job = await enqueue(user, { start_within_s: 1 });
    expect((await stack.balance(user)).reserved).toBeGreaterThan(0);
    await vi.waitFor(async () => expect(await row(job.id)).toMatchObject({ status: "failed", error: { code: "EXPIRED" }, creditState: "released" }), { timeout: 10_000, interval: 100 });
    expect(await claim(job.id, 1)).toMatchObject({ run: false });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    await vi.waitFor(async () => expect((await events(job.id)).at(-1)).toMatchObject({ type: "error", status: "failed", error: { code: "EXPIRED" } }), { timeout: 5000, interval: 100 });
  });

  it("does not expire a job waiting for its retry past start_within_s: a worker did start it", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const job = await enqueue(user, { start_within_s: 1 });
    await vi.waitFor(async () => expect((await row(job.id)).dispatchCount).toBe(1), { timeout: 10_000, interval: 50 });
    await claim(job.id, 1);
    expect(await fail(job.id, 1, true)).toEqual({ applied: true, status: "queued" });
    // Past the start window, with reconciler passes in between: still queued for its retry, then run.
    await sleep(1500);
    expect(await row(job.id)).toMatchObject({ status: "queued", dispatchCount: 2 });
    expect(await claim(job.id, 2)).toMatchObject({ run: true, job: { id: job.id, attempt: 2 } });
  });

  it("cancels a run past timeout_s: its worker is told to stop, the job fails TIMEOUT and its credits are released", async () => {
    const user = await stack.newUser(100, "user", "pro");
    const job = await enqueue(user, { timeout_s: 1 });
    const nc = await stack.nats.connect();
    const canceled = new Promise<void>((resolve) => {
      const sub = nc.subscribe(subjects.jobCancel(job.id), { callback: () => (sub.unsubscribe(), resolve()) });
    });
    await nc.flush();
    expect(await claim(job.id, 1)).toMatchObject({ run: true, job: { id: job.id, timeout_s: 1 } });
    await canceled;
    expect(await row(job.id)).toMatchObject({ status: "failed", error: { code: "TIMEOUT" }, creditState: "released" });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    // The worker's late report changes nothing.
    expect(await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome: { status: "succeeded", result: { files: [] } } })).toMatchObject({ applied: false });
  });
});
