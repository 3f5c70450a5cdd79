import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { useStack } from "./stack.ts";

// Accounts only: no storage, jobs or workers.
const ctx = useStack({ apps: ["auth-service", "billing-service", "gateway"] });

describe("accounts and tokens", () => {
  it("registers a user on the free tier with 100 credits, and refuses the same email twice", async () => {
    const email = `Someone-${randomUUID()}@Example.com`;
    const reg = await ctx.api.post("/auth/register", { email, password: "s3cret-pass", full_name: "Someone" });
    expect(reg.status).toBe(201);
    expect(reg.body).toMatchObject({ email: email.toLowerCase(), tier: "free", credits: 100 });
    const again = await ctx.api.post("/auth/register", { email: email.toLowerCase(), password: "other-pass", full_name: "Other" });
    expectEnvelope(again, 409, "EMAIL_TAKEN");
  });

  it("logs in with JSON or with form fields, and tells who the token belongs to", async () => {
    const { email, password, user_id } = await ctx.api.signUp();
    const json = await ctx.api.post("/auth/login", { email, password });
    expect(json.status).toBe(200);
    expect(json.body).toMatchObject({ token_type: "Bearer", expires_in: expect.any(Number) });
    const form = await ctx.api.request("POST", "/api/v1/auth/login", { form: { username: email, password } });
    expect(form.status).toBe(200);
    const me = await ctx.api.get("/auth/me", form.body.access_token);
    expect(me.body).toMatchObject({ user_id, email, tier: "free", role: "user", credits: 100 });
  });

  it("answers malformed bodies with 400 or 422 in the error envelope", async () => {
    const broken = await ctx.api.request("POST", "/api/v1/auth/register", { body: "{not json", headers: { "content-type": "application/json" } });
    expectEnvelope(broken, 400, "BAD_REQUEST");
    const invalid = await ctx.api.post("/auth/register", { email: "not-an-email", password: "short", full_name: "" });
    expectEnvelope(invalid, 422, "INVALID_INPUT");
    const paths = invalid.body.error.details.fields.map((f: { path: string }) => f.path);
    expect(paths).toEqual(expect.arrayContaining(["body.email", "body.password", "body.full_name"]));
    expect(invalid.headers.get("x-request-id")).toBe(invalid.body.error.request_id);
  });
});
