import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { useStack } from "./stack.ts";

// A stack with no token and no emulator: only local engines could run, so hosted models are refused up front.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"] });

describe("a stack without any model provider", () => {
  it("answers POST /jobs for a hosted model with 503 PROVIDER_UNAVAILABLE, reserving nothing and recording no job", async () => {
    const u = await ctx.api.signUp();
    const body = { type: "image.generate", input: { prompt: "a lighthouse", num_images: 4, quality: "premium" } };
    const refused = await ctx.api.post("/jobs", body, u.token, { "idempotency-key": "no-provider-1" });
    expectEnvelope(refused, 503, "PROVIDER_UNAVAILABLE");
    expect(refused.body.error.details).toMatchObject({ type: "image.generate", provider: "none" });
    expectEnvelope(await ctx.api.post("/jobs/estimate", body, u.token), 503, "PROVIDER_UNAVAILABLE");
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(0);
  });

  it("says so on /health and in GET /job-types", async () => {
    const health = await ctx.api.request("GET", "/health");
    expect(health.body.checks.models).toEqual({ status: "unknown", provider: "none" });
    const types = await ctx.api.get("/job-types");
    const generate = types.body.data.find((t: { type: string }) => t.type === "image.generate");
    expect(generate.models.every((l: { available: boolean }) => !l.available)).toBe(true);
  });
});
