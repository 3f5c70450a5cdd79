import { createConfig, lintFromString } from "@redocly/openapi-core";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { useStack } from "./stack.ts";

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
    expect(await ctx.api.request("GET", "/health/live")).toMatchObject({ status: 200, body: { status: "ok" } });
    expect(await ctx.api.request("GET", "/health/ready")).toMatchObject({ status: 200, body: { status: "ready", missing: [] } });
  });

  it("publishes a valid OpenAPI 3.1 document for the API and serves the docs UI", async () => {
    const spec = await ctx.api.request("GET", "/openapi.json");
    expect(spec.status).toBe(200);
    expect(spec.body.openapi).toMatch(/^3\.1/);
    expect(Object.keys(spec.body.paths)).toEqual(expect.arrayContaining(["/api/v1/jobs", "/api/v1/uploads", "/api/v1/auth/login", "/api/v1/files/{id}/download-url"]));
    // Redocly's recommended rules: every $ref resolves, each operation has a summary and an operationId, no component
    // goes unused. Its "at least one 4xx" rule is off: health and discovery routes have none to give (the test below
    // checks the errors of the others).
    const config = await createConfig({ extends: ["recommended"], rules: { "operation-4xx-response": "off" } });
    const problems = await lintFromString({ source: JSON.stringify(spec.body), absoluteRef: "openapi.json", config });
    expect(problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} (${p.location[0]?.pointer})`)).toEqual([]);
    const docs = await fetch(`${ctx.stack.url}/docs/`, { redirect: "follow" });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger/i);
  });

  it("documents each operation as a client generator needs it: names, public routes, errors, the upload body", async () => {
    const spec = (await ctx.api.request("GET", "/openapi.json")).body;
    const ops = Object.entries(spec.paths as Record<string, Record<string, any>>).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, op })));
    const ids = ops.map(({ op }) => op.operationId);
    expect(ops.filter(({ op }) => typeof op.operationId !== "string" || !/^[a-z][A-Za-z0-9]*$/.test(op.operationId)).map((o) => o.key)).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ops.filter(({ op }) => !op.summary).map((o) => o.key)).toEqual([]);

    const isPublic = (o: { op: any }) => Array.isArray(o.op.security) && o.op.security.length === 0;
    const publicOps = ["POST /api/v1/auth/register", "POST /api/v1/auth/login", "POST /api/v1/auth/refresh", "GET /api/v1/auth/jwks", "GET /api/v1/job-types", "GET /api/v1/pipeline-types", "GET /", "GET /health", "GET /health/live", "GET /health/ready", "POST /api/v1/webhooks/replicate"];
    expect(ops.filter(isPublic).map((o) => o.key).sort()).toEqual([...publicOps].sort());

    const error = { $ref: "#/components/schemas/Error" };
    expect(spec.components.schemas.Error.properties.error).toBeDefined();
    const errorSchema = (op: any, status: number) => op.responses?.[status]?.content?.["application/json"]?.schema;
    for (const o of ops.filter((o) => !isPublic(o))) expect(errorSchema(o.op, 401), o.key).toEqual(error);
    for (const o of ops.filter((o) => o.op.requestBody || o.op.parameters?.some((p: any) => p.in === "query"))) {
      expect(errorSchema(o.op, 422), o.key).toEqual(error);
    }
    // A status an operation's description promises (the event stream's 503, say) is among its documented answers.
    const unlisted = ops.flatMap(({ key, op }) => [...String(op.description ?? "").matchAll(/\b(4[0-2]\d|50\d)\b/g)].filter((m) => !op.responses?.[m[1]!]).map((m) => `${key} ${m[1]}`));
    expect(unlisted).toEqual([]);
    const byKey = Object.fromEntries(ops.map((o) => [o.key, o.op]));
    expect(errorSchema(byKey["POST /api/v1/jobs"], 402)).toEqual(error);
    expect(errorSchema(byKey["POST /api/v1/jobs"], 429)).toEqual(error);
    expect(errorSchema(byKey["GET /api/v1/admin/users"], 403)).toEqual(error);

    const upload = byKey["POST /api/v1/files"].requestBody.content["multipart/form-data"].schema;
    expect(upload.required).toEqual(["file"]);
    expect(upload.properties.file).toMatchObject({ type: "string", format: "binary" });
    expect(upload.properties.project_id).toMatchObject({ type: "string", format: "uuid" });
    const jobTypes = byKey["GET /api/v1/job-types"].responses[200].content["application/json"].schema;
    expect(jobTypes.properties.data.items.properties).toHaveProperty("input_schema");
    expect(byKey["GET /api/v1/jobs/{id}"].responses[200].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Job" });
  });

  it("answers a browser's CORS preflight from another origin (any, by default), and exposes the headers clients read", async () => {
    const origin = "https://app.example.com";
    const preflight = await fetch(`${ctx.stack.url}/api/v1/jobs`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type,idempotency-key" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-methods")).toMatch(/POST/);
    expect(preflight.headers.get("access-control-allow-headers")).toMatch(/idempotency-key/);
    const res = await fetch(`${ctx.stack.url}/api/v1/job-types`, { headers: { origin } });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const exposed = res.headers.get("access-control-expose-headers")?.split(/,\s*/) ?? [];
    expect(exposed).toEqual(expect.arrayContaining(["x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after", "idempotent-replayed"]));
  });

  it("answers unknown routes with 404 in the envelope, echoing the request id", async () => {
    const res = await ctx.api.request("GET", "/api/v1/nothing-here", { headers: { "x-request-id": "req-from-client-1" } });
    expectEnvelope(res, 404, "NOT_FOUND");
    expect(res.body.error.request_id).toBe("req-from-client-1");
    expect(res.headers.get("x-request-id")).toBe("req-from-client-1");
  });

  it("answers 503 in the envelope, quickly, when a service is down, and recovers when it is back", async () => {
    const user = await ctx.api.signUp();
    await ctx.stack.services.stop("billing-service");
    try {
      const started = Date.now();
      const res = await ctx.api.get("/billing/credits", user.token);
      expectEnvelope(res, 503, "SERVICE_UNAVAILABLE");
      expect(Date.now() - started).toBeLessThan(3000);
      const health = await ctx.api.request("GET", "/health");
      expect(health.status).toBe(503);
      expect(health.body.services.billing.status).toBe("down");
      expect(await ctx.api.request("GET", "/health/ready")).toMatchObject({ status: 503, body: { status: "not_ready", missing: ["billing"] } });
    } finally {
      await ctx.stack.services.start("billing-service");
    }
    expect((await ctx.api.get("/billing/credits", user.token)).status).toBe(200);
  });

  it("stays ready for API traffic while a worker kind is down: only the detailed /health says 503", async () => {
    await ctx.stack.services.stop("worker-audio");
    try {
      const health = await ctx.api.request("GET", "/health");
      expect(health.status).toBe(503);
      expect(health.body.services["worker-audio"].status).toBe("down");
      expect(await ctx.api.request("GET", "/health/ready")).toMatchObject({ status: 200, body: { status: "ready", missing: [] } });
      expect((await ctx.api.request("GET", "/health/live")).status).toBe(200);
    } finally {
      await ctx.stack.services.start("worker-audio");
    }
  });
});
