// OWASP API2:2023 Broken Authentication: tokens that are forged, expired, revoked or of the wrong kind
// are refused; sign-in is throttled against guessing and stuffing; weak passwords are refused; a
// disabled account is out at once.
import { randomUUID } from "node:crypto";
import { expectEnvelope } from "@cutroom/e2e/client";
import { signUpAdmin, useStack } from "@cutroom/e2e/stack";
import { SignJWT, exportSPKI, importJWK, type JWK } from "jose";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { withRestarted } from "./services.ts";

// Behind a trusted proxy (TRUST_PROXY), X-Forwarded-For says who the client is: the throttling tests speak from addresses of their own.
const ctx = useStack({ apps: ["auth-service", "billing-service", "gateway"], env: { TRUST_PROXY: "true" } });

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
const login = (email: string, password: string, from: string) => ctx.api.post("/auth/login", { email, password }, undefined, { "x-forwarded-for": from });
const newEmail = () => `user-${randomUUID()}@e2e.cutroom.test`;
const patchUser = (userId: string, body: unknown, token: string) => ctx.api.request("PATCH", `/api/v1/admin/users/${userId}`, { json: body, token });
const refresh = (refreshToken: string) => ctx.api.post("/auth/refresh", { refresh_token: refreshToken });

describe("API2 broken authentication: tokens", () => {
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

  it("takes neither a refresh token as an access token nor an access token as a refresh token", async () => {
    const { token, refresh: refreshToken } = await ctx.api.signUp();
    expectEnvelope(await ctx.api.get("/auth/me", refreshToken), 401, "UNAUTHORIZED");
    expectEnvelope(await refresh(token), 401, "UNAUTHORIZED");
    // Both still work for what they are.
    expect((await ctx.api.get("/auth/me", token)).status).toBe(200);
    expect((await refresh(refreshToken)).status).toBe(200);
  });

  it("rotates refresh tokens and revokes the whole family when an old one is presented again", async () => {
    const { refresh: first } = await ctx.api.signUp();
    const second = await refresh(first);
    expect(second.status).toBe(200);
    const third = await refresh(second.body.refresh_token);
    expect(third.status).toBe(200);
    // The first token was already used: presenting it again is theft, so the family dies.
    expectEnvelope(await refresh(first), 401);
    expectEnvelope(await refresh(third.body.refresh_token), 401);
  });

  it("logs out: the refresh token stops working", async () => {
    const { token, refresh: refreshToken } = await ctx.api.signUp();
    const out = await ctx.api.post("/auth/logout", { refresh_token: refreshToken }, token);
    expect(out.status).toBe(200);
    expectEnvelope(await refresh(refreshToken), 401);
  });
});

describe("API2 broken authentication: sign-in", () => {
  it("answers a wrong password and an unknown email alike, with 401", async () => {
    const { email } = await ctx.api.signUp();
    const wrong = await ctx.api.post("/auth/login", { email, password: "not-the-password" });
    const unknown = await ctx.api.post("/auth/login", { email: `nobody-${randomUUID()}@e2e.cutroom.test`, password: "whatever-pass" });
    expectEnvelope(wrong, 401);
    expectEnvelope(unknown, 401);
    expect(wrong.body.error.message).toBe(unknown.body.error.message);
  });

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
    // A low limit for this test alone: every other test signs in from the one address the test runner has.
    await withRestarted(ctx.stack, "auth-service", { AUTH_LOGINS_PER_ADDRESS_PER_MINUTE: "12" }, async () => {
      for (let i = 0; i < 12; i++) expectEnvelope(await login(newEmail(), "spraying", "203.0.113.30"), 401, "INVALID_CREDENTIALS");
      const refused = await login(newEmail(), "spraying", "203.0.113.30");
      expectEnvelope(refused, 429, "RATE_LIMITED");
      expect(Number(refused.headers.get("retry-after"))).toBeLessThanOrEqual(60);
      expectEnvelope(await login(newEmail(), "spraying", "203.0.113.31"), 401, "INVALID_CREDENTIALS");
    });
  });

  it("refuses a commonly breached password, or the email itself, with 422 on the password field", async () => {
    for (const password of ["12345678", "password", "Password1", "iloveyou"]) {
      const reply = await ctx.api.post("/auth/register", { email: newEmail(), password, full_name: "Weak" });
      expectEnvelope(reply, 422, "INVALID_INPUT");
      expect(reply.body.error.details.fields).toEqual([expect.objectContaining({ path: "password", message: expect.stringMatching(/^is too common: /) })]);
    }
    const email = `ada.lovelace-${randomUUID().slice(0, 8)}@e2e.cutroom.test`;
    const own = await ctx.api.post("/auth/register", { email, password: email.split("@")[0], full_name: "Ada" });
    expectEnvelope(own, 422, "INVALID_INPUT");
    expect(own.body.error.details.fields[0]).toMatchObject({ path: "password", message: "is too common: it is your email address" });
    expect((await ctx.api.post("/auth/register", { email, password: "correct horse battery staple", full_name: "Ada" })).status).toBe(201);
  });
});

describe("API2 broken authentication: disabled accounts", () => {
  it("a disabled user is out at once: their token, their refresh token and their password no longer work, until enabled again", async () => {
    const admin = await signUpAdmin(ctx);
    const user = await ctx.api.signUp();
    const disabled = await patchUser(user.user_id, { disabled: true }, admin.token);
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ user_id: user.user_id, disabled: true });

    const me = await ctx.api.get("/auth/me", user.token);
    expectEnvelope(me, 403, "ACCOUNT_DISABLED");
    expectEnvelope(await ctx.api.request("GET", `/api/v1/jobs/${randomUUID()}/events?access_token=${user.token}`), 403, "ACCOUNT_DISABLED");
    const refused = await refresh(user.refresh);
    expectEnvelope(refused, 403, "ACCOUNT_DISABLED");
    const signIn = await ctx.api.post("/auth/login", { email: user.email, password: user.password });
    expectEnvelope(signIn, 403, "ACCOUNT_DISABLED");
    expect(signIn.body.error.message).toMatch(/disabled/);
    // A wrong password is still just a wrong password.
    expectEnvelope(await ctx.api.post("/auth/login", { email: user.email, password: "not the password" }), 401, "INVALID_CREDENTIALS");
    const listed = await ctx.api.get("/admin/users?limit=100", admin.token);
    expect(listed.body.data.find((u: { user_id: string }) => u.user_id === user.user_id)).toMatchObject({ disabled: true });

    expect((await patchUser(user.user_id, { disabled: false }, admin.token)).body).toMatchObject({ disabled: false });
    const back = await ctx.api.post("/auth/login", { email: user.email, password: user.password });
    expect(back.status).toBe(200);
    expect((await ctx.api.get("/auth/me", back.body.access_token)).status).toBe(200);
    expectEnvelope(await refresh(user.refresh), 401, "UNAUTHORIZED");
  });
});
