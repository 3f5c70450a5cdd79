// OWASP API6:2023 Unrestricted Access to Sensitive Business Flows: the flows that move credits
// (free credits at sign-up, buying, spending, refunds) cannot be farmed, raced or switched on by a client.
import { randomUUID } from "node:crypto";
import { expectEnvelope } from "@cutroom/e2e/client";
import { makeVideo } from "@cutroom/e2e/media";
import { useStack } from "@cutroom/e2e/stack";
import { describe, expect, it } from "vitest";
import { withRestarted } from "./services.ts";

// No workers: jobs stay queued, so their credits stay reserved until canceled. Behind a trusted proxy
// (TRUST_PROXY), X-Forwarded-For says who the client is, so one test can speak from an address of its own.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"], env: { TRUST_PROXY: "true" } });

/** A user with 100 credits and a 1 s video, on which a colour grade costs 25. */
async function userWithClip() {
  const user = await ctx.api.signUp();
  const { body } = await ctx.api.upload(user.token, "clip.mp4", "video/mp4", makeVideo(1, "64x48"));
  return { ...user, grade: { type: "video.color-grade", input: { file_id: body.file.id as string, preset: "Warm" } } };
}

describe("API6 sensitive business flows: credits", () => {
  it("lets concurrent job requests spend no more than the balance: 4 of 8 jobs at 25 credits each on 100, the rest 402", async () => {
    const u = await userWithClip();
    const replies = await Promise.all(Array.from({ length: 8 }, () => ctx.api.post("/jobs", u.grade, u.token)));
    expect(replies.map((r) => r.status).sort()).toEqual([202, 202, 202, 202, 402, 402, 402, 402]);
    for (const refused of replies.filter((r) => r.status === 402)) expectEnvelope(refused, 402, "INSUFFICIENT_CREDITS");
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 0, reserved: 100 });
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(4);
  });

  it("makes one job and one reservation of concurrent requests with the same Idempotency-Key", async () => {
    const u = await userWithClip();
    const key = randomUUID();
    const replies = await Promise.all(Array.from({ length: 6 }, () => ctx.api.post("/jobs", u.grade, u.token, { "idempotency-key": key })));
    expect(replies.map((r) => r.status)).toEqual(Array(6).fill(202));
    expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 75, reserved: 25 });
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(1);
  });

  it("refunds a job canceled by concurrent requests once: one 200, the others 409, the balance back to 100 and not beyond", async () => {
    const u = await userWithClip();
    const job = await ctx.api.post("/jobs", u.grade, u.token);
    expect((await ctx.api.get("/billing/credits", u.token)).body.credits).toBe(75);
    const cancels = await Promise.all(Array.from({ length: 6 }, () => ctx.api.post(`/jobs/${job.body.id}/cancel`, {}, u.token)));
    expect(cancels.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of cancels.filter((c) => c.status !== 200)) expectEnvelope(r, 409);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
    const ledger = (await ctx.api.get("/billing/ledger", u.token)).body.data.map((e: { kind: string }) => e.kind);
    expect(ledger.filter((k: string) => k === "release")).toHaveLength(1);
  });

  it("refuses test purchases with 403 unless billing enables them, and /health says when they are on", async () => {
    const user = await ctx.api.signUp();
    const buy = () => ctx.api.post("/billing/purchases", { package: "credits_100", payment_method: "test" }, user.token);
    const refused = await buy();
    expectEnvelope(refused, 403, "FORBIDDEN");
    expect(refused.body.error.message).toMatch(/BILLING_TEST_PURCHASES/);
    expect((await ctx.api.get("/billing/credits", user.token)).body.credits).toBe(100);
    expect((await ctx.api.request("GET", "/health")).body.checks).not.toHaveProperty("test_purchases");

    await withRestarted(ctx.stack, "billing-service", { BILLING_TEST_PURCHASES: "true" }, async () => {
      const bought = await buy();
      expect(bought.status).toBe(201);
      expect(bought.body).toMatchObject({ credits_added: 100, new_balance: 200 });
      expect((await ctx.api.request("GET", "/health")).body.checks.test_purchases).toMatchObject({ status: "up" });
    });
  });
});

describe("API6 sensitive business flows: sign-up credits", () => {
  it("limits registrations per client address, so free credits cannot be farmed from one machine; another address is unaffected", async () => {
    const register = (from: string) =>
      ctx.api.post("/auth/register", { email: `farm-${randomUUID()}@e2e.cutroom.test`, password: "correct horse battery", full_name: "Farmer" }, undefined, { "x-forwarded-for": from });
    // The default limit, for this test alone: the stack lifts it, since every other test registers from one address.
    await withRestarted(ctx.stack, "auth-service", { AUTH_REGISTRATIONS_PER_ADDRESS_PER_HOUR: "10" }, async () => {
      for (let i = 0; i < 10; i++) expect((await register("203.0.113.50")).status).toBe(201);
      const refused = await register("203.0.113.50");
      expectEnvelope(refused, 429, "RATE_LIMITED");
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(3600);
      expect((await register("203.0.113.51")).status).toBe(201);
    });
  });
});
