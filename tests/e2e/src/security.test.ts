import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "@cutroom/devstack";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { signUpAdmin, useStack } from "./stack.ts";

const metricsPort = await freePort();
const METRICS_TOKEN = `scraper-${randomUUID()}`;

// Behind a trusted proxy (TRUST_PROXY), X-Forwarded-For says who the client is: each test speaks from addresses of its own.
// At info, every request is logged, so the logs test sees what an operator's logs would hold.
const ctx = useStack({
  apps: ["auth-service", "billing-service", "gateway"],
  env: { TRUST_PROXY: "true", AUTH_LOGINS_PER_ADDRESS_PER_MINUTE: "12", METRICS_PORT: String(metricsPort), METRICS_TOKEN, LOG_LEVEL: "info" },
});

const login = (email: string, password: string, from: string) => ctx.api.post("/auth/login", { email, password }, undefined, { "x-forwarded-for": from });
const newEmail = () => `user-${randomUUID()}@e2e.cutroom.test`;

describe("sign-in throttling", () => {
  it("answers the 11th wrong password in a row with 429 and Retry-After, locks that account alone", async () => {
    const victim = await ctx.api.signUp();
    const other = await ctx.api.signUp();
    for (let i = 1; i <= 10; i++) expectEnvelope(await login(victim.email, `guess ${i}`, "203.0.113.10"), 401, "INVALID_CREDENTIALS");
    const eleventh = await login(victim.email, "guess 11", "203.0.113.10");
    expectEnvelope(eleventh, 429, "RATE_LIMITED");
    const retryAfter = Number(eleventh.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    // The right password waits too (that is the point), from anywhere; another account is untouched.
    expectEnvelope(await login(victim.email, victim.password, "198.51.100.20"), 429, "RATE_LIMITED");
    const fine = await login(other.email, other.password, "198.51.100.21");
    expect(fine.status).toBe(200);
    expect(fine.body.access_token).toEqual(expect.any(String));
  });

  it("limits sign-in attempts per client address, and another address is unaffected", async () => {
    for (let i = 0; i < 12; i++) expectEnvelope(await login(newEmail(), "spraying", "203.0.113.30"), 401, "INVALID_CREDENTIALS");
    const refused = await login(newEmail(), "spraying", "203.0.113.30");
    expectEnvelope(refused, 429, "RATE_LIMITED");
    expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(60);
    expectEnvelope(await login(newEmail(), "spraying", "203.0.113.31"), 401, "INVALID_CREDENTIALS");
  });
});

describe("test purchases", () => {
  it("are refused with 403 unless billing enables them, and /health says when they are on", async () => {
    const user = await ctx.api.signUp();
    const buy = () => ctx.api.post("/billing/purchases", { package: "credits_100", payment_method: "test" }, user.token);
    const refused = await buy();
    expectEnvelope(refused, 403, "FORBIDDEN");
    expect(refused.body.error.message).toMatch(/BILLING_TEST_PURCHASES/);
    expect((await ctx.api.get("/billing/credits", user.token)).body.credits).toBe(100);
    expect((await ctx.api.request("GET", "/health")).body.checks).not.toHaveProperty("test_purchases");

    await ctx.stack.services.stop("billing-service");
    await ctx.stack.services.start("billing-service", { BILLING_TEST_PURCHASES: "true" });
    const bought = await buy();
    expect(bought.status).toBe(201);
    expect(bought.body).toMatchObject({ credits_added: 100, new_balance: 200 });
    expect((await ctx.api.request("GET", "/health")).body.checks.test_purchases).toMatchObject({ status: "up" });
  });
});

describe("logs", () => {
  it("never hold an access token or a signed storage token, only a placeholder", async () => {
    const user = await ctx.api.signUp();
    const signed = `v1.${randomUUID()}.signature`;
    await fetch(`${ctx.stack.url}/api/v1/jobs/${randomUUID()}/events?access_token=${user.token}`);
    await fetch(`${ctx.stack.url}/storage/blob/${signed}`);
    await ctx.api.get("/auth/me", user.token);
    await new Promise((r) => setTimeout(r, 300));
    const log = readFileSync(join(ctx.stack.dir, "logs", "gateway.log"), "utf8");
    expect(log).toContain("access_token=[redacted]");
    expect(log).toContain("/storage/blob/[redacted]");
    expect(log).not.toContain(user.token);
    expect(log).not.toContain(signed);
  });
});

describe("metrics", () => {
  it("keeps /metrics on the API port for admins and the metrics token: 401 anonymous, 403 for a user", async () => {
    expectEnvelope(await ctx.api.request("GET", "/metrics"), 401, "UNAUTHORIZED");
    const user = await ctx.api.signUp();
    expectEnvelope(await ctx.api.request("GET", "/metrics", { token: user.token }), 403, "FORBIDDEN");
    expectEnvelope(await ctx.api.request("GET", "/metrics", { token: "not-the-metrics-token" }), 401, "UNAUTHORIZED");

    const admin = await signUpAdmin(ctx);
    const res = await ctx.api.request("GET", "/metrics", { token: admin.token });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/^cutroom_http_requests_total\{method="GET",route="\/metrics",status="401"\} [1-9]/m);
    expect(res.body).toMatch(/^cutroom_http_request_duration_seconds_bucket\{.*route="\/api\/v1\/auth\/register".*\} \d+/m);
    expect(res.body).toMatch(/^cutroom_job_watchers 0$/m);
    expect(res.body).toMatch(/^process_cpu_user_seconds_total /m);

    expect((await ctx.api.request("GET", "/metrics", { token: METRICS_TOKEN })).status).toBe(200);
  });

  it("serves /metrics without authentication on METRICS_PORT, and nothing else there", async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toMatch(/^cutroom_http_requests_total\{/m);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/api/v1/auth/me`)).status).toBe(404);
  });
});
