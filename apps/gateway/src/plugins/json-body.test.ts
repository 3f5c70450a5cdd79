import Fastify from "fastify";
import { validatorCompiler } from "fastify-type-provider-zod";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { errorsPlugin } from "./errors.ts";
import { jsonBodyPlugin, jsonProblem } from "./json-body.ts";

async function echoApp() {
  const app = Fastify();
  await app.register(errorsPlugin);
  await app.register(jsonBodyPlugin);
  app.post("/echo", async (req) => req.body);
  return app;
}

describe("JSON bodies", () => {
  it("refuses a body nested 5,000 levels deep with 400 in the envelope", async () => {
    const app = await echoApp();
    const deep = "[".repeat(5000) + "]".repeat(5000);
    const res = await app.inject({ method: "POST", url: "/echo", headers: { "content-type": "application/json" }, payload: `{"input":${deep}}` });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: "BAD_REQUEST", message: expect.stringContaining("nested more than") });
  });

  it("refuses a NUL character in any string or key, naming where", async () => {
    const app = await echoApp();
    const res = await app.inject({ method: "POST", url: "/echo", headers: { "content-type": "application/json" }, payload: JSON.stringify({ full_name: "Ada\u0000" }) });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toBe("body.full_name contains a NUL character");
    expect(jsonProblem({ a: [{ "k\0": 1 }] })).toMatch(/NUL/);
  });

  it("takes a POST without a body where the body is optional (logout, a chunked upload's complete), and names the missing fields where it is not", async () => {
    const app = await echoApp();
    app.setValidatorCompiler(validatorCompiler);
    app.post("/optional", { schema: { body: z.object({ sha256: z.string().optional() }).optional() } }, async (req) => ({ got: req.body }));
    app.post("/required", { schema: { body: z.object({ name: z.string() }) } }, async (req) => ({ got: req.body }));
    const bare = await app.inject({ method: "POST", url: "/optional" });
    expect(bare.statusCode, bare.body).toBe(200);
    expect(bare.json()).toEqual({ got: {} });
    const missing = await app.inject({ method: "POST", url: "/required" });
    expect(missing.statusCode).toBe(422);
    expect(missing.json().error.details.fields[0].path).toBe("body.name");
  });

  it("refuses a NUL character (%00) in the URL with 400, before any route sees it", async () => {
    const app = await echoApp();
    app.get("/items", async (req) => req.query);
    const res = await app.inject({ method: "GET", url: "/items?type=%00" });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: "BAD_REQUEST", message: "the URL contains a NUL character (%00)" });
    expect((await app.inject({ method: "GET", url: "/items?type=%2500" })).json()).toEqual({ type: "%00" });
  });

  it("keeps accepting ordinary bodies, and still refuses prototype poisoning", async () => {
    const app = await echoApp();
    const ok = await app.inject({ method: "POST", url: "/echo", headers: { "content-type": "application/json" }, payload: JSON.stringify({ a: { b: [1, "é", null] } }) });
    expect(ok.json()).toEqual({ a: { b: [1, "é", null] } });
    const poisoned = await app.inject({ method: "POST", url: "/echo", headers: { "content-type": "application/json" }, payload: '{"__proto__":{"admin":true}}' });
    expect(poisoned.statusCode).toBe(400);
  });
});
