import { randomUUID } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { makePng } from "./media.ts";
import { jobHelpers } from "./jobs.ts";
import { signUpAdmin, useStack } from "./stack.ts";
import { expectGapFree } from "./watch.ts";

/*
 * Retries, priorities and deadlines (ADR 039) through the gateway, with a real worker and the model
 * emulator as the provider. A short configured backoff: the test waits for what the feature defines.
 */
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "model-emulator", "gateway"],
  env: { JOB_RETRY_BASE_MS: "500", RECONCILE_INTERVAL_MS: "500" },
});
const { watchToEnd, upload, settled } = jobHelpers(ctx);
const at = (e: { timestamp: string }) => Date.parse(e.timestamp);

async function enterpriseUser() {
  const u = await ctx.api.signUp();
  const admin = await signUpAdmin(ctx, `admin-${u.user_id}@e2e.cutroom.test`);
  expect((await ctx.api.request("PATCH", `/api/v1/admin/users/${u.user_id}`, { token: admin.token, json: { tier: "enterprise" } })).status).toBe(200);
  return (await ctx.api.post("/auth/login", { email: u.email, password: u.password })).body.access_token as string;
}

describe("job control, end to end", () => {
  it("retries a job whose provider answers 503 twice, after a doubling backoff seen in its events, and it succeeds on the third attempt", async () => {
    const u = await ctx.api.signUp();
    const run = await watchToEnd(u.token, "image.generate", { prompt: `a lighthouse [emulator:unavailable:2:${randomUUID()}]` });
    expectGapFree(run.events);
    expect(run.final, JSON.stringify(run.final.error)).toMatchObject({ status: "succeeded", attempts: 3, max_attempts: 5 });
    const retries = run.events.filter((e: any) => e.type === "status" && e.status === "queued" && e.message?.includes("retrying"));
    const runs = run.events.filter((e: any) => e.type === "status" && e.status === "running");
    expect(retries).toHaveLength(2);
    expect(runs).toHaveLength(3);
    const announced = retries.map((e: any) => Number(/retrying in ([\d.]+) s$/.exec(e.message)![1]) * 1000);
    expect(announced[0]).toBeGreaterThanOrEqual(500);
    expect(announced[1]).toBeGreaterThanOrEqual(1000);
    // Each next attempt starts no sooner than its retry said (the announced delay is rounded to 0.1 s).
    for (const i of [0, 1]) expect(at(runs[i + 1]) - at(retries[i])).toBeGreaterThanOrEqual(announced[i]! - 50);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ reserved: 0 });
  });

  it("fails a job at once when the provider refuses the work, and gives its credits back", async () => {
    const u = await ctx.api.signUp();
    const run = await watchToEnd(u.token, "image.generate", { prompt: "a lighthouse [emulator:fail]" });
    expect(run.final).toMatchObject({ status: "failed", attempts: 1, error: { code: "PROVIDER_ERROR" }, credits: { state: "released" } });
    expect(run.events.some((e: any) => e.type === "status" && e.status === "queued" && e.message?.includes("retrying"))).toBe(false);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("refuses high priority to a free account with 403 and reserves nothing", async () => {
    const u = await ctx.api.signUp();
    const res = await ctx.api.post("/jobs", { type: "image.generate", input: { prompt: "a lighthouse" }, priority: "high" }, u.token);
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: "FORBIDDEN", details: { reason: "priority", tier: "free" } });
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("runs a high-priority job before the normal ones queued ahead of it while the workers were stopped, and expires one nobody started in time", async () => {
    const token = await enterpriseUser();
    const png = await upload(token, "in.png", "image/png", await makePng());
    await ctx.stack.services.stop("worker-image");
    const post = async (extra: Record<string, unknown> = {}) => {
      const res = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: png.id }, ...extra }, token);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      return res.body.id as string;
    };
    const expiring = await post({ start_within_s: 1 });
    const normal = [await post(), await post(), await post(), await post()];
    const high = await post({ priority: "high" });
    // No worker: the job with a 1 s start window fails EXPIRED and its credit comes back.
    await vi.waitFor(async () => expect((await ctx.api.get(`/jobs/${expiring}`, token)).body).toMatchObject({ status: "failed", error: { code: "EXPIRED" }, credits: { state: "released" } }), { timeout: 20_000, interval: 200 });

    await ctx.stack.services.start("worker-image", { WORKER_CONCURRENCY: "1" });
    const ended = await Promise.all([high, ...normal].map((id) => settled(id, token)));
    for (const job of ended) expect(job.status).toBe("succeeded");
    const [first, ...rest] = ended.map((j) => Date.parse(j.started_at));
    for (const started of rest) expect(first).toBeLessThanOrEqual(started);
    expect((await ctx.api.get("/billing/credits", token)).body).toMatchObject({ reserved: 0 });
  });

  it("cancels a run past its timeout_s: its worker stops the prediction, the job fails TIMEOUT and its credits come back", async () => {
    const u = await ctx.api.signUp();
    const res = await ctx.api.post("/jobs", { type: "image.generate", input: { prompt: "a slow lighthouse [emulator:slow]" }, timeout_s: 2 }, u.token);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({ timeout_s: 2, priority: "normal" });
    const final = await vi.waitFor(
      async () => {
        const job = (await ctx.api.get(`/jobs/${res.body.id}`, u.token)).body;
        expect(job.status).toBe("failed");
        return job;
      },
      { timeout: 25_000, interval: 200 },
    );
    expect(final).toMatchObject({ error: { code: "TIMEOUT" }, credits: { state: "released" }, attempts: 1 });
    expect(final.started_at).not.toBeNull();
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });
});
