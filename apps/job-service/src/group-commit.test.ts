import { randomUUID } from "node:crypto";
import type { Caller } from "@cutroom/contracts";
import { orphanReservations } from "@cutroom/ledger";
import { silentLogger } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createJobHandlers } from "./app.ts";
import { jobIdFor } from "./job-id.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

describe("group commit: concurrent creations share a transaction, each with its own answer (ADR 027)", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack();
  });
  afterAll(async () => stack?.stop());

  const resize = async (user: Caller, width = 320) => ({ type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width } });
  const ctx = (caller: Caller) => ({ requestId: randomUUID(), caller, log: silentLogger() });
  const ledgerOf = async (user: Caller) => (await stack.client.call("billing", "ledger", { user_id: user.user_id, limit: 100, offset: 0 })).data;

  /**
   * Holds the creation transaction in flight (a job insert that sleeps) while `burst` runs, so what
   * it sends queues and goes as one batch once the held one commits.
   */
  async function behindAHeldBatch<T>(burst: () => Promise<T>): Promise<T> {
    const holder = await stack.newUser(100);
    await stack.db.sql.unsafe(`
      create or replace function jobs.hold_test_insert() returns trigger language plpgsql as $$
      begin
        if new.input->>'width' = '319' then perform pg_sleep(0.5); end if;
        return new;
      end $$;
      create trigger hold_test_insert before insert on jobs.jobs for each row execute function jobs.hold_test_insert();`);
    try {
      const held = stack.client.call("job", "create", { body: await resize(holder, 319) }, { caller: holder });
      await vi.waitFor(
        async () => {
          const [sleeping] = await stack.db.sql`select count(*)::int as n from pg_stat_activity where wait_event = 'PgSleep' and datname = current_database()`;
          expect(sleeping!.n).toBe(1);
        },
        { timeout: 5000, interval: 10 },
      );
      const result = burst();
      await held;
      return await result;
    } finally {
      await stack.db.sql.unsafe("drop trigger hold_test_insert on jobs.jobs; drop function jobs.hold_test_insert()");
    }
  }

  it("answers each job of one batch on its own: others 202, the user short of credits 402 for what it cannot pay, the one over its rate 429, balances exact", async () => {
    const rich = [await stack.newUser(100), await stack.newUser(100)];
    const poor = await stack.newUser(2);
    const busy = await stack.newUser(100);
    const bodies = {
      rich: await Promise.all(rich.map((u) => resize(u))),
      poor: await resize(poor),
      busy: await resize(busy),
    };
    const sends: { who: string; caller: Caller; body: Awaited<ReturnType<typeof resize>> }[] = [];
    for (let i = 0; i < 4; i++) {
      sends.push({ who: "rich0", caller: rich[0]!, body: bodies.rich[0]! }, { who: "rich1", caller: rich[1]!, body: bodies.rich[1]! }, { who: "poor", caller: poor, body: bodies.poor });
    }
    // The free tier allows 10 new jobs a minute: the busy user's 11th and 12th are refused.
    for (let i = 0; i < 12; i++) sends.push({ who: "busy", caller: busy, body: bodies.busy });

    const answers = await behindAHeldBatch(() =>
      Promise.allSettled(sends.map((s) => stack.client.call("job", "create", { body: s.body }, { caller: s.caller }))),
    );
    const outcome = (who: string) =>
      answers.flatMap((a, i) => (sends[i]!.who === who ? [a.status === "fulfilled" ? 202 : (a.reason as { status: number }).status] : []));
    expect(outcome("rich0")).toEqual([202, 202, 202, 202]);
    expect(outcome("rich1")).toEqual([202, 202, 202, 202]);
    expect(outcome("poor").sort()).toEqual([202, 202, 402, 402]);
    expect(outcome("busy").filter((s) => s === 202)).toHaveLength(10);
    expect(outcome("busy").filter((s) => s === 429)).toHaveLength(2);
    const refused = answers.find((a, i) => sends[i]!.who === "poor" && a.status === "rejected") as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: "INSUFFICIENT_CREDITS", details: { required: 1, available: 0 } });
    const limited = answers.find((a, i) => sends[i]!.who === "busy" && a.status === "rejected") as PromiseRejectedResult;
    expect(limited.reason).toMatchObject({ code: "RATE_LIMITED", details: { limit: 10, remaining: 0 } });
    const allowed = answers.flatMap((a, i) => (sends[i]!.who === "busy" && a.status === "fulfilled" ? [a.value.rate!.remaining] : []));
    expect(allowed.sort((a, b) => b - a)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);

    // They went in one transaction: one commit time for all of them.
    const ids = answers.flatMap((a) => (a.status === "fulfilled" ? [a.value.job.id] : []));
    const [times] = await stack.db.sql`select count(distinct created_at)::int as n from jobs.jobs where id = any(${ids}::uuid[])`;
    expect(times!.n).toBe(1);

    expect(await stack.balance(rich[0]!)).toMatchObject({ credits: 96, reserved: 4 });
    expect(await stack.balance(rich[1]!)).toMatchObject({ credits: 96, reserved: 4 });
    expect(await stack.balance(poor)).toMatchObject({ credits: 0, reserved: 2 });
    expect(await stack.balance(busy)).toMatchObject({ credits: 90, reserved: 10 });
    expect((await ledgerOf(poor)).filter((e) => e.kind === "reserve")).toHaveLength(2);
    expect((await ledgerOf(busy)).filter((e) => e.kind === "reserve")).toHaveLength(10);
    expect((await orphanReservations(stack.db.db)).filter((o) => [poor, busy, ...rich].some((u) => u.user_id === o.userId))).toEqual([]);
  });

  it("makes one job with one reservation of concurrent requests with the same key, on one replica and across two, batched with others", async () => {
    const user = await stack.newUser(3);
    const other = await stack.newUser(100);
    const body = await resize(user);
    const otherBody = await resize(other);
    const key = `same-${randomUUID()}`;
    const replicas = [createJobHandlers(stack.deps), createJobHandlers(stack.deps)];
    const answers = await behindAHeldBatch(() =>
      Promise.all([
        ...Array.from({ length: 8 }, (_, i) => replicas[i % 2]!.create({ body, idempotency_key: key }, ctx(user))),
        ...Array.from({ length: 4 }, () => replicas[0]!.create({ body: otherBody }, ctx(other))),
      ]),
    );
    const mine = answers.slice(0, 8);
    expect(new Set(mine.map((a) => a.job.id)).size).toBe(1);
    expect(mine.filter((a) => a.created)).toHaveLength(1);
    expect((await ledgerOf(user)).map((e) => [e.kind, e.job_id])).toEqual([["reserve", mine[0]!.job.id], ["grant", null]]);
    expect(await stack.balance(user)).toMatchObject({ credits: 2, reserved: 1 });
    expect(await stack.balance(other)).toMatchObject({ credits: 96, reserved: 4 });
  });

  it("counts only the jobs a batch creates against the rate window: a replay in it takes no slot, at the limit as below it", async () => {
    // The free tier's 10 a minute: 9 taken, one of them keyed; then one batch of its replay, a new job and one more.
    // All in one minute's window: started at least 10 s before the minute ends.
    const toNextMinute = 60_000 - (Date.now() % 60_000);
    if (toNextMinute < 10_000) await new Promise((r) => setTimeout(r, toNextMinute + 100));
    const user = await stack.newUser(100);
    const body = await resize(user);
    const key = `k-${randomUUID()}`;
    const first = await stack.client.call("job", "create", { body, idempotency_key: key }, { caller: user });
    for (let i = 0; i < 8; i++) await stack.client.call("job", "create", { body }, { caller: user });
    const answers = await behindAHeldBatch(() =>
      Promise.allSettled([
        stack.client.call("job", "create", { body, idempotency_key: key }, { caller: user }),
        stack.client.call("job", "create", { body }, { caller: user }),
        stack.client.call("job", "create", { body }, { caller: user }),
      ]),
    );
    const [replay, tenth, eleventh] = answers;
    expect(replay).toMatchObject({ status: "fulfilled", value: { created: false, job: { id: first.job.id } } });
    expect(tenth).toMatchObject({ status: "fulfilled", value: { created: true, rate: { limit: 10, remaining: 0 } } });
    expect(eleventh).toMatchObject({ status: "rejected", reason: { code: "RATE_LIMITED" } });
    // The window holds what was counted: ten creations and the refused eleventh, not the replay.
    const [window] = await stack.db.sql`select sum(count)::int as n from billing.rate_windows where user_id = ${user.user_id} and bucket = 'jobs.create'`;
    expect(window!.n).toBe(11);
  });

  it("creates a job whose account another transaction holds on its own, without holding up the rest of its batch", async () => {
    const locked = await stack.newUser(100);
    const free = await stack.newUser(100);
    const lockedBody = await resize(locked);
    const freeBody = await resize(free);
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let isLocked!: () => void;
    const locking = new Promise<void>((r) => {
      isLocked = r;
    });
    const holding = stack.db.sql.begin(async (tx) => {
      await tx`select 1 from billing.accounts where user_id = ${locked.user_id} for update`;
      isLocked();
      await released;
    });
    await locking;
    const waiting = stack.client.call("job", "create", { body: lockedBody }, { caller: locked });
    const others = await Promise.all(Array.from({ length: 3 }, () => stack.client.call("job", "create", { body: freeBody }, { caller: free })));
    expect(others.map((o) => o.created)).toEqual([true, true, true]);
    release();
    await holding;
    expect(await waiting).toMatchObject({ created: true });
    expect(await stack.balance(locked)).toMatchObject({ credits: 99, reserved: 1 });
  });

  it("never reserves twice for one job: a reserve already on the ledger for a new job's id refuses its creation, charging nothing (ADR 059)", async () => {
    // A state the creation cannot reach (a reserve commits only with its job's row), made by hand:
    // the ledger's one-reserve-per-job index is what keeps it from charging the job a second time.
    const user = await stack.newUser(10);
    const others = await stack.newUser(10);
    const key = `reserved-${randomUUID()}`;
    const id = jobIdFor(user.user_id, key);
    await stack.db.sql`insert into billing.ledger (id, user_id, kind, amount, job_id) values (${randomUUID()}, ${user.user_id}, 'reserve', -1, ${id})`;
    const [body, otherBody] = [await resize(user), await resize(others)];
    const [mine, theirs] = await behindAHeldBatch(() =>
      Promise.allSettled([
        stack.client.call("job", "create", { body, idempotency_key: key }, { caller: user }),
        stack.client.call("job", "create", { body: otherBody }, { caller: others }),
      ]),
    );
    expect(mine.status).toBe("rejected");
    expect(theirs).toMatchObject({ status: "fulfilled", value: { created: true } });
    expect((await ledgerOf(user)).filter((e) => e.kind === "reserve")).toHaveLength(1);
    expect(await stack.balance(user)).toMatchObject({ credits: 10, reserved: 0 });
    const [row] = await stack.db.sql`select count(*)::int as n from jobs.jobs where id = ${id}`;
    expect(row!.n).toBe(0);
  });
});
