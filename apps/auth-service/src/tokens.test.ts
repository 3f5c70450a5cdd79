import { randomBytes, randomUUID } from "node:crypto";
import { createMigratedDb, silentLogger } from "@cutroom/testing";
import { decodeProtectedHeader, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuthHandlers, loadSigningKey } from "./app.ts";
import { listPublicJwks } from "./signing-keys.ts";
import { startAuthStack, type AuthStack } from "./test-stack.ts";

describe("access and refresh tokens", () => {
  let stack: AuthStack;
  const emails = { alice: "alice@example.com", bob: "bob@example.com" };

  beforeAll(async () => {
    stack = await startAuthStack();
    await stack.register(emails.alice);
    await stack.register(emails.bob);
  });
  afterAll(async () => stack?.stop());

  const unauthorized = { code: "UNAUTHORIZED", status: 401 };

  it("issues an EdDSA access token that verifies with the published JWKS and carries the user's claims", async () => {
    const before = Math.floor(Date.now() / 1000);
    const pair = await stack.login(emails.alice);
    expect(pair).toMatchObject({ token_type: "Bearer", expires_in: 900 });

    const { keys } = await stack.client.call("auth", "jwks", {});
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig", kid: stack.deps.signingKey.kid });
    expect(keys[0]).not.toHaveProperty("d");

    const { payload, protectedHeader } = await stack.verify(pair.access_token);
    expect(protectedHeader).toMatchObject({ alg: "EdDSA", kid: stack.deps.signingKey.kid });
    expect(payload).toMatchObject({ role: "user", tier: "free", typ: "access", iss: "cutroom" });
    expect(payload.sub).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(payload.exp).toBeGreaterThanOrEqual(before + 900);
    expect(payload.exp).toBeLessThanOrEqual(before + 902);
  });

  it("rejects an access token signed with a key that is not published, even under the published kid", async () => {
    const pair = await stack.login(emails.alice);
    const { payload } = await stack.verify(pair.access_token);
    const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const forged = await new SignJWT({ ...payload, role: "admin" })
      .setProtectedHeader({ alg: "EdDSA", kid: decodeProtectedHeader(pair.access_token).kid! })
      .sign(privateKey);
    await expect(stack.verify(forged)).rejects.toMatchObject({ code: "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" });
  });

  it("rotates a refresh token: the new pair works and the old token is refused", async () => {
    const first = await stack.login(emails.alice);
    const second = await stack.refresh(first.refresh_token);
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect((await stack.verify(second.access_token)).payload.sub).toBe((await stack.verify(first.access_token)).payload.sub);
    await expect(stack.refresh(second.refresh_token)).resolves.toMatchObject({ token_type: "Bearer" });
    await expect(stack.refresh(first.refresh_token)).rejects.toMatchObject(unauthorized);
  });

  it("revokes the whole family when a spent refresh token is presented again, leaving other logins alone", async () => {
    const stolen = await stack.login(emails.alice);
    const otherDevice = await stack.login(emails.alice);
    const rotated = await stack.refresh(stolen.refresh_token);

    await expect(stack.refresh(stolen.refresh_token)).rejects.toMatchObject(unauthorized);
    await expect(stack.refresh(rotated.refresh_token)).rejects.toMatchObject(unauthorized);
    await expect(stack.refresh(otherDevice.refresh_token)).resolves.toMatchObject({ token_type: "Bearer" });
  });

  it("lets exactly one of several concurrent refreshes of the same token succeed", async () => {
    const pair = await stack.login(emails.bob);
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => stack.refresh(pair.refresh_token)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((r) => r.status === "rejected")) expect(r.reason).toMatchObject(unauthorized);
  });

  it("refuses an unknown or an expired refresh token", async () => {
    await expect(stack.refresh(randomBytes(32).toString("base64url"))).rejects.toMatchObject(unauthorized);

    const shortLived = createAuthHandlers({ ...stack.deps, refreshTokenTtlSeconds: 1 });
    const ctx = { requestId: randomUUID(), caller: null, log: silentLogger() };
    const pair = await shortLived.login({ email: emails.bob, password: "correct horse battery staple" }, ctx);
    await new Promise((r) => setTimeout(r, 1100));
    await expect(stack.refresh(pair.refresh_token)).rejects.toMatchObject(unauthorized);
  });

  it("logs out one session with its refresh token, or every session without one", async () => {
    await stack.register("kim@example.com");
    const laptop = await stack.login("kim@example.com");
    const phone = await stack.login("kim@example.com");
    const tablet = await stack.login("kim@example.com");
    const asKim = await stack.as(laptop.access_token);

    expect(await stack.client.call("auth", "logout", { refresh_token: laptop.refresh_token }, asKim)).toEqual({ revoked: 1 });
    await expect(stack.refresh(laptop.refresh_token)).rejects.toMatchObject(unauthorized);
    const phoneAgain = await stack.refresh(phone.refresh_token);

    expect(await stack.client.call("auth", "logout", {}, asKim)).toEqual({ revoked: 2 });
    await expect(stack.refresh(phoneAgain.refresh_token)).rejects.toMatchObject(unauthorized);
    await expect(stack.refresh(tablet.refresh_token)).rejects.toMatchObject(unauthorized);
  });

  it("does not let one user log out another user's session", async () => {
    const alice = await stack.login(emails.alice);
    const bob = await stack.login(emails.bob);
    expect(await stack.client.call("auth", "logout", { refresh_token: alice.refresh_token }, await stack.as(bob.access_token))).toEqual({ revoked: 0 });
    await expect(stack.refresh(alice.refresh_token)).resolves.toMatchObject({ token_type: "Bearer" });
  });

  it("refuses logout and me without a signed-in caller", async () => {
    await expect(stack.client.call("auth", "logout", {})).rejects.toMatchObject(unauthorized);
    await expect(stack.client.call("auth", "me", {})).rejects.toMatchObject(unauthorized);
  });
});

describe("signing keys", () => {
  let database: Awaited<ReturnType<typeof createMigratedDb>>;
  beforeAll(async () => {
    database = await createMigratedDb("authkeys");
  });
  afterAll(async () => database?.close());

  it("publishes the key of every replica that started at the same time, and keeps it across restarts", async () => {
    const replicas = await Promise.all([1, 2, 3].map(() => loadSigningKey(database.db)));
    const published = (await listPublicJwks(database.db)).map((k) => k.kid);
    for (const key of replicas) expect(published).toContain(key.kid);

    const restarted = await loadSigningKey(database.db);
    expect(published).toContain(restarted.kid);
    expect((await loadSigningKey(database.db)).kid).toBe(restarted.kid);
  });
});
