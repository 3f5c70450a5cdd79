import { randomUUID } from "node:crypto";
import { createRpcClient, serveRpc, type RpcClient } from "@cutroom/runtime";
import { createMigratedDb, silentLogger, startTestNats } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBillingHandlers } from "./app.ts";

describe("billing over NATS on a real Postgres", () => {
  let db: Awaited<ReturnType<typeof createMigratedDb>>;
  let nats: Awaited<ReturnType<typeof startTestNats>>;
  let billing: RpcClient;

  beforeAll(async () => {
    db = await createMigratedDb("billing");
    nats = await startTestNats();
    const nc = await nats.connect();
    serveRpc(nc, "billing", createBillingHandlers({ db: db.db }), silentLogger());
    billing = createRpcClient(await nats.connect(), { timeoutMs: 2000 });
  });
  afterAll(async () => {
    await nats?.stop();
    await db?.close();
  });

  const newAccount = async (credits = 100) => {
    const user_id = randomUUID();
    await billing.call("billing", "openAccount", { user_id, credits });
    return user_id;
  };
  const balance = (user_id: string) => billing.call("billing", "balance", { user_id, tier: "free" });

  it("opens an account once, with its sign-up grant on the ledger", async () => {
    const user = await newAccount(100);
    await billing.call("billing", "openAccount", { user_id: user, credits: 100 });
    expect((await balance(user)).credits).toBe(100);
    const ledger = await billing.call("billing", "ledger", { user_id: user, limit: 20, offset: 0 });
    expect(ledger.data.map((e) => [e.kind, e.amount])).toEqual([["grant", 100]]);
  });

  it("reserves once per job, then captures exactly once even when told twice", async () => {
    const user = await newAccount(100);
    const job = randomUUID();
    await billing.call("billing", "reserve", { user_id: user, job_id: job, amount: 30 });
    await billing.call("billing", "reserve", { user_id: user, job_id: job, amount: 30 });
    expect(await balance(user)).toMatchObject({ credits: 70, reserved: 30 });
    const results = await Promise.all([1, 2, 3].map(() => billing.call("billing", "capture", { job_id: job })));
    expect(results.every((r) => r.state === "captured")).toBe(true);
    expect(await balance(user)).toMatchObject({ credits: 70, reserved: 0 });
    // A release after the capture refunds nothing.
    expect(await billing.call("billing", "release", { job_id: job })).toEqual({ state: "captured", refunded: 0 });
    expect((await balance(user)).credits).toBe(70);
  });

  it("releases a reservation once, however many concurrent releases arrive", async () => {
    const user = await newAccount(50);
    const job = randomUUID();
    await billing.call("billing", "reserve", { user_id: user, job_id: job, amount: 40 });
    const results = await Promise.all([1, 2, 3, 4].map(() => billing.call("billing", "release", { job_id: job })));
    expect(results.map((r) => r.refunded).sort()).toEqual([0, 0, 0, 40]);
    expect(await balance(user)).toMatchObject({ credits: 50, reserved: 0 });
  });

  it("refuses a reservation larger than the balance with INSUFFICIENT_CREDITS, and never overdraws under concurrency", async () => {
    const user = await newAccount(100);
    const attempts = await Promise.allSettled(
      Array.from({ length: 8 }, () => billing.call("billing", "reserve", { user_id: user, job_id: randomUUID(), amount: 30 })),
    );
    expect(attempts.filter((a) => a.status === "fulfilled")).toHaveLength(3);
    const refused = attempts.find((a) => a.status === "rejected") as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: "INSUFFICIENT_CREDITS", status: 402 });
    expect(await balance(user)).toMatchObject({ credits: 10, reserved: 90 });
  });

  it("counts job creations per minute and refuses past the tier's limit", async () => {
    const user = randomUUID();
    // Windows are whole minutes: start early in one so all 11 calls land in the same window.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
    const decisions = [];
    for (let i = 0; i < 11; i++) decisions.push(await billing.call("billing", "rate", { user_id: user, tier: "free", bucket: "jobs.create" }));
    expect(decisions[0]).toMatchObject({ allowed: true, limit: 10, remaining: 9 });
    expect(decisions[9]).toMatchObject({ allowed: true, remaining: 0 });
    expect(decisions[10]).toMatchObject({ allowed: false, remaining: 0 });
    expect(decisions[10]!.reset).toBeGreaterThan(Date.now() / 1000);
  });

  it("counts prompt enhancements in a bucket of their own, 30 a minute on free, apart from job creations", async () => {
    const user = randomUUID();
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
    const enhance = () => billing.call("billing", "rate", { user_id: user, tier: "free", bucket: "prompts.enhance" });
    const decisions = await Promise.all(Array.from({ length: 30 }, enhance));
    expect(decisions.every((d) => d.allowed && d.limit === 30)).toBe(true);
    expect(await enhance()).toMatchObject({ allowed: false, limit: 30, remaining: 0 });
    expect(await billing.call("billing", "rate", { user_id: user, tier: "free", bucket: "jobs.create" })).toMatchObject({ allowed: true, limit: 10 });
    expect(await billing.call("billing", "rate", { user_id: user, tier: "pro", bucket: "prompts.enhance" })).toMatchObject({ limit: 120 });
    await expect(billing.call("billing", "rate", { user_id: user, tier: "free", bucket: "toString" })).rejects.toMatchObject({ code: "INVALID_INPUT" });
  });

  it("refuses test purchases unless they are turned on, and then adds the package's credits", async () => {
    const user = await newAccount(100);
    const buy = () => billing.call("billing", "purchase", { user_id: user, package: "credits_100", payment_method: "test" });
    await expect(buy()).rejects.toMatchObject({ code: "FORBIDDEN", status: 403, message: expect.stringMatching(/BILLING_TEST_PURCHASES/) });
    expect((await balance(user)).credits).toBe(100);
    expect((await billing.call("billing", "health", {})).checks).not.toHaveProperty("test_purchases");

    const handlers = createBillingHandlers({ db: db.db, testPurchases: true });
    const ctx = { requestId: randomUUID(), caller: null, log: silentLogger() };
    await expect(handlers.purchase({ user_id: user, package: "credits_100", payment_method: "test" }, ctx)).resolves.toMatchObject({ credits_added: 100, new_balance: 200 });
    await expect(handlers.purchase({ user_id: user, package: "credits_100", payment_method: "card" }, ctx)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    expect((await handlers.health({}, ctx)).checks.test_purchases).toEqual({ status: "up" });
  });

  it("throttles any key in windows of the caller's choosing, each key and bucket on its own, and gives a unit back on cost -1", async () => {
    const email = `${randomUUID()}@example.com`;
    const throttle = (key: string, cost: 1 | -1 = 1) => billing.call("billing", "throttle", { bucket: "auth.login.account", key, limit: 3, window_seconds: 900, cost });
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await throttle(email));
    expect(decisions.map((d) => [d.allowed, d.remaining])).toEqual([[true, 2], [true, 1], [true, 0], [false, 0]]);
    // A 15-minute window ends on a quarter hour.
    expect(decisions[3]!.reset % 900).toBe(0);
    expect(decisions[3]!.reset - Date.now() / 1000).toBeLessThanOrEqual(900);
    expect(await throttle(email, -1)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await throttle(email, -1)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await throttle(`other-${email}`)).toMatchObject({ allowed: true, remaining: 2 });
    expect(await billing.call("billing", "throttle", { bucket: "auth.register.address", key: email, limit: 3, window_seconds: 3600, cost: 1 })).toMatchObject({ remaining: 2 });
  });

  it("answers a malformed request with INVALID_INPUT and field details", async () => {
    await expect(billing.call("billing", "reserve", { user_id: "nope", job_id: randomUUID(), amount: -1 } as never)).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { fields: expect.arrayContaining([expect.objectContaining({ path: "user_id" })]) },
    });
  });
});
