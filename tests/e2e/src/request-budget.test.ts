import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { useStack } from "./stack.ts";

// A budget of 5 requests a minute for free users, so that a test spends it quickly (ADR 031).
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"], env: { RATE_LIMIT_FREE_PER_MINUTE: "5" } });

describe("the per-user request budget on authenticated routes", () => {
  it("counts each authenticated request with X-RateLimit-* headers, then answers 429 RATE_LIMITED with Retry-After; job creation keeps its own limit", async () => {
    const u = await ctx.api.signUp();
    const remaining: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await ctx.api.get(i % 2 === 0 ? "/billing/credits" : "/jobs", u.token);
      expect(res.status).toBe(200);
      expect(res.headers.get("x-ratelimit-limit")).toBe("5");
      expect(Number(res.headers.get("x-ratelimit-reset"))).toBeGreaterThan(Date.now() / 1000);
      remaining.push(res.headers.get("x-ratelimit-remaining")!);
    }
    expect(remaining).toEqual(["4", "3", "2", "1", "0"]);

    const refused = await ctx.api.get("/billing/credits", u.token);
    expectEnvelope(refused, 429, "RATE_LIMITED");
    expect(refused.body.error.details).toMatchObject({ limit: 5, remaining: 0 });
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    // The window's end rounded up to a whole second, so a client never comes back too early.
    expect(retryAfter).toBeLessThanOrEqual(61);
    expect(refused.headers.get("x-ratelimit-remaining")).toBe("0");

    // Not counted here: its answer is about the job (422 for a file that is not there), not the budget.
    const job = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: randomUUID() } }, u.token);
    expectEnvelope(job, 422, "INVALID_INPUT");
    // Another user's budget is their own; routes without a token are not counted.
    expect((await ctx.api.get("/billing/credits", (await ctx.api.signUp()).token)).status).toBe(200);
    expect((await ctx.api.get("/job-types")).status).toBe(200);
  });
});
