import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { ADMIN_EMAIL, useStack } from "./stack.ts";

const ctx = useStack({ env: { RPC_TIMEOUT_MS: "1500" } });

describe("the platform", () => {
  it("reports every dependency and service as up on /health", async () => {
    const res = await ctx.api.request("GET", "/health");
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("ok");
    for (const dep of ["nats", "database", "storage"]) expect(res.body.checks[dep].status).toBe("up");
    for (const svc of ["auth", "job", "storage", "billing", "worker-image", "worker-video", "worker-audio"]) {
      expect(res.body.services[svc]?.status, svc).toBe("up");
    }
    expect((await ctx.api.request("GET", "/")).body).toMatchObject({ name: "cutroom", api: "/api/v1" });
  });

  it("publishes OpenAPI 3.1 for the API and serves the docs UI", async () => {
    const spec = await ctx.api.request("GET", "/openapi.json");
    expect(spec.status).toBe(200);
    expect(spec.body.openapi).toMatch(/^3\.1/);
    expect(Object.keys(spec.body.paths)).toEqual(expect.arrayContaining(["/api/v1/jobs", "/api/v1/uploads", "/api/v1/auth/login", "/api/v1/files/{id}/download-url"]));
    const docs = await fetch(`${ctx.stack.url}/docs/`, { redirect: "follow" });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger/i);
  });

  it("answers unknown routes with 404 in the envelope, echoing the request id", async () => {
    const res = await ctx.api.request("GET", "/api/v1/nothing-here", { headers: { "x-request-id": "req-from-client-1" } });
    expectEnvelope(res, 404, "NOT_FOUND");
    expect(res.body.error.request_id).toBe("req-from-client-1");
    expect(res.headers.get("x-request-id")).toBe("req-from-client-1");
  });

  it("keeps admin endpoints for admins: 403 for a plain user, stats for an admin", async () => {
    const user = await ctx.api.signUp();
    expectEnvelope(await ctx.api.get("/admin/stats", user.token), 403, "FORBIDDEN");
    const admin = await ctx.api.signUp(ADMIN_EMAIL);
    const stats = await ctx.api.get("/admin/stats", admin.token);
    expect(stats.status).toBe(200);
    expect(stats.body).toMatchObject({ total_users: expect.any(Number), active_jobs: expect.any(Number), completed_jobs_today: expect.any(Number), total_storage_gb: expect.any(Number) });
    expect(stats.body.total_users).toBeGreaterThanOrEqual(2);
  });

  it("answers 503 in the envelope, quickly, when a service is down, and recovers when it is back", async () => {
    const user = await ctx.api.signUp();
    await ctx.stack.services.stop("billing-service");
    const started = Date.now();
    const res = await ctx.api.get("/billing/credits", user.token);
    expectEnvelope(res, 503, "SERVICE_UNAVAILABLE");
    expect(Date.now() - started).toBeLessThan(3000);
    const health = await ctx.api.request("GET", "/health");
    expect(health.status).toBe(503);
    expect(health.body.services.billing.status).toBe("down");
    await ctx.stack.services.start("billing-service");
    expect((await ctx.api.get("/billing/credits", user.token)).status).toBe(200);
  });

  it("never answers a malformed request with a 500: every documented operation, fed garbage, says 4xx in the envelope", { timeout: 120_000 }, async () => {
    const user = await ctx.api.signUp();
    const spec = (await ctx.api.request("GET", "/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
    const garbage: Array<{ body?: string; type?: string }> = [
      // (GET requests get the garbage in their path and query only: fetch sends no GET body.)
      { body: "{not json", type: "application/json" },
      { body: JSON.stringify({ unexpected: [1, { deep: null }], limit: "lots" }), type: "application/json" },
      { body: JSON.stringify("just a string"), type: "application/json" },
      { body: "a=1&b=2", type: "application/x-www-form-urlencoded" },
      { body: "\u0000\u0001binary", type: "application/octet-stream" },
      { body: "--x\r\nnot really multipart", type: "multipart/form-data; boundary=x" },
      {},
    ];
    const ids = ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00", "' or 1=1 --"];
    const failures: string[] = [];
    for (const [template, ops] of Object.entries(spec.paths)) {
      for (const method of Object.keys(ops)) {
        for (const id of ids) {
          const path = template.replace(/\{[^}]+\}/g, encodeURIComponent(id)) + "?limit=-5&offset=abc&status=nope";
          for (const g of method === "get" ? [{}] : garbage) {
            const res = await ctx.api.request(method.toUpperCase(), path, { token: user.token, body: g.body, headers: g.type ? { "content-type": g.type } : {} });
            const enveloped = res.status < 400 || typeof res.body?.error?.code === "string";
            if (res.status >= 500 || !enveloped) failures.push(`${method.toUpperCase()} ${path} [${g.type ?? "no body"}] → ${res.status} ${JSON.stringify(res.body).slice(0, 120)}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });
});
