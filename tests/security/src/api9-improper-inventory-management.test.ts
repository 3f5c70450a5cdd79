// OWASP API9:2023 Improper Inventory Management: /openapi.json is the inventory. What it documents
// is what answers, with the authentication it says; nothing else answers on the public port (no old
// versions, debug routes or internal endpoints), and the unauthenticated metrics port serves /metrics alone.
import { randomUUID } from "node:crypto";
import { freePort } from "@cutroom/devstack";
import { expectEnvelope } from "@cutroom/e2e/client";
import { useStack } from "@cutroom/e2e/stack";
import WebSocket from "ws";
import { describe, expect, it } from "vitest";
import { fillPath, getOperations } from "./openapi.ts";

const metricsPort = await freePort();
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"], env: { METRICS_PORT: String(metricsPort) } });

describe("API9 improper inventory management: the document is the inventory", () => {
  it("refuses every documented operation that is not marked public to an anonymous caller with 401", async () => {
    const { operations } = await getOperations(ctx.api);
    const guarded = operations.filter((o) => !o.isPublic);
    expect(guarded.length).toBeGreaterThan(15);
    for (const o of guarded) {
      const res = await ctx.api.request(o.method, fillPath(o.path, randomUUID()), o.method === "GET" || o.method === "DELETE" ? {} : { json: {} });
      expectEnvelope(res, 401, "UNAUTHORIZED");
    }
  });

  it("answers nothing it does not document: other versions, unversioned paths, debug and internal routes are 404", async () => {
    const { token } = await ctx.api.signUp();
    const paths = [
      "/api/v0/jobs",
      "/api/v2/jobs",
      "/api/jobs",
      "/jobs",
      "/admin/users",
      "/api/v1/internal/users",
      "/api/v1/debug",
      "/debug/pprof",
      "/internal",
      "/svc/auth/login",
      "/.env",
      "/.git/config",
      "/documentation/json",
      "/swagger.json",
      "/api/v1/openapi.json",
      "/storage",
      "/storage/files",
    ];
    for (const path of paths) {
      expectEnvelope(await ctx.api.request("GET", path, { token }), 404, "NOT_FOUND");
      expectEnvelope(await ctx.api.request("POST", path, { token, json: {} }), 404, "NOT_FOUND");
    }
  });

  it("answers an undocumented method on a documented path with a 4xx, never a 2xx", async () => {
    const { token } = await ctx.api.signUp();
    const { operations } = await getOperations(ctx.api);
    const byPath = new Map<string, Set<string>>();
    for (const o of operations) byPath.set(o.path, (byPath.get(o.path) ?? new Set()).add(o.method));
    for (const [path, methods] of byPath) {
      for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE"].filter((m) => !methods.has(m))) {
        const res = await ctx.api.request(method, fillPath(path, randomUUID()), { token, ...(method === "GET" || method === "DELETE" ? {} : { json: {} }) });
        expect(res.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${method} ${path}`).toBeLessThan(500);
        expect(res.body?.error?.code, `${method} ${path}`).toEqual(expect.any(String));
      }
    }
  });

  it("leaves out of the document only the routes docs/SECURITY.md lists, each guarded as it says", async () => {
    const { spec } = await getOperations(ctx.api);
    const undocumented = ["/openapi.json", "/docs", "/metrics", "/ws", "/ws/jobs/{id}", "/ws/pipelines/{id}", "/storage/blob/{token}"];
    expect(Object.keys(spec.paths).filter((p) => undocumented.includes(p))).toEqual([]);
    expect((await fetch(`${ctx.stack.url}/docs/`)).status).toBe(200);
    expectEnvelope(await ctx.api.request("GET", "/metrics"), 401, "UNAUTHORIZED");
    expectEnvelope(await ctx.api.request("GET", `/storage/blob/v1.${randomUUID()}.forged`), 403, "FORBIDDEN");
    for (const path of ["/ws", `/ws/jobs/${randomUUID()}`, `/ws/pipelines/${randomUUID()}`]) {
      const ws = new WebSocket(`${ctx.stack.url.replace(/^http/, "ws")}${path}`);
      const code = await new Promise<number>((resolve) => ws.once("close", resolve));
      expect(code, path).toBe(1008);
    }
  });

  it("keeps storage's internal ingest endpoint and anything else under /storage off the public port", async () => {
    for (const path of [`/storage/ingest/${randomUUID()}`, "/storage/anything", "/storage/blob"]) {
      const res = await ctx.api.request("PUT", path, { body: "x", headers: { "content-type": "application/octet-stream" } });
      expectEnvelope(res, 404, "NOT_FOUND");
    }
  });

  it("serves /metrics without authentication on METRICS_PORT, and nothing else there", async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toMatch(/^cutroom_http_requests_total\{/m);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/api/v1/auth/me`)).status).toBe(404);
  });
});
