import { randomUUID } from "node:crypto";
import { SignJWT, exportSPKI, importJWK, type JWK } from "jose";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { useStack } from "./stack.ts";

const ctx = useStack();

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

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

  it("answers a wrong password and an unknown email alike, with 401", async () => {
    const { email } = await ctx.api.signUp();
    const wrong = await ctx.api.post("/auth/login", { email, password: "not-the-password" });
    const unknown = await ctx.api.post("/auth/login", { email: `nobody-${randomUUID()}@e2e.cutroom.test`, password: "whatever-pass" });
    expectEnvelope(wrong, 401);
    expectEnvelope(unknown, 401);
    expect(wrong.body.error.message).toBe(unknown.body.error.message);
  });

  it("rotates refresh tokens and revokes the whole family when an old one is presented again", async () => {
    const { refresh } = await ctx.api.signUp();
    const first = await ctx.api.post("/auth/refresh", { refresh_token: refresh });
    expect(first.status).toBe(200);
    const second = await ctx.api.post("/auth/refresh", { refresh_token: first.body.refresh_token });
    expect(second.status).toBe(200);
    // The first token was already used: presenting it again is theft, so the family dies.
    expectEnvelope(await ctx.api.post("/auth/refresh", { refresh_token: refresh }), 401);
    expectEnvelope(await ctx.api.post("/auth/refresh", { refresh_token: second.body.refresh_token }), 401);
  });

  it("logs out: the refresh token stops working", async () => {
    const { token, refresh } = await ctx.api.signUp();
    const out = await ctx.api.post("/auth/logout", { refresh_token: refresh }, token);
    expect(out.status).toBe(200);
    expectEnvelope(await ctx.api.post("/auth/refresh", { refresh_token: refresh }), 401);
  });

  it("refuses missing, tampered, expired and wrong-algorithm tokens with 401", async () => {
    const { token, user_id } = await ctx.api.signUp();
    expectEnvelope(await ctx.api.get("/auth/me"), 401, "UNAUTHORIZED");

    const [h, p, s] = token.split(".");
    const payload = JSON.parse(Buffer.from(p!, "base64url").toString());
    const tampered = `${h}.${b64url({ ...payload, role: "admin" })}.${s}`;
    expectEnvelope(await ctx.api.get("/auth/me", tampered), 401);

    const none = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(payload)}.`;
    expectEnvelope(await ctx.api.get("/auth/me", none), 401);

    // The classic confusion attack: HS256 keyed with the server's own public key.
    const jwks = await ctx.api.get("/auth/jwks");
    const pub = jwks.body.keys[0] as JWK;
    const pem = await exportSPKI((await importJWK(pub, "EdDSA")) as never);
    const hs = await new SignJWT(payload).setProtectedHeader({ alg: "HS256", kid: pub.kid }).sign(new TextEncoder().encode(pem));
    expectEnvelope(await ctx.api.get("/auth/me", hs), 401);

    // A token signed with the real private key, but expired.
    const sql = postgres(ctx.stack.databaseUrl, { max: 1 });
    const [key] = await sql`select kid, private_jwk from auth.signing_keys order by created_at desc limit 1`;
    await sql.end();
    const priv = await importJWK(key!.private_jwk as JWK, "EdDSA");
    const expired = await new SignJWT({ role: "user", tier: "free", typ: "access" })
      .setProtectedHeader({ alg: "EdDSA", kid: key!.kid })
      .setSubject(user_id)
      .setIssuer("cutroom")
      .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(priv);
    expectEnvelope(await ctx.api.get("/auth/me", expired), 401);

    // The same key and claims, not expired, are accepted: the refusals above are about the token, not the test.
    // (With its issue time: a token without `iat` cannot be checked against a revocation, and is refused.)
    const fresh = await new SignJWT({ role: "user", tier: "free", typ: "access" })
      .setProtectedHeader({ alg: "EdDSA", kid: key!.kid })
      .setSubject(user_id)
      .setIssuer("cutroom")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(priv);
    expect((await ctx.api.get("/auth/me", fresh)).status).toBe(200);
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
