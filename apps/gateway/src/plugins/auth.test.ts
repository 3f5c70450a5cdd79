import { randomUUID } from "node:crypto";
import { tokenCutoffsBucket } from "@cutroom/contracts";
import { createLogger, type RpcClient } from "@cutroom/runtime";
import { startNatsForTest } from "@cutroom/runtime/test-nats";
import { Kvm } from "@nats-io/kv";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { watchTokenCutoffs, type TokenCutoffWatch } from "../token-cutoffs.ts";
import { createTokenVerifier, verifyOrThrow } from "./auth.ts";

const log = createLogger("test", "silent");

describe("access tokens on the gateway, with verified signatures remembered", () => {
  let nats: Awaited<ReturnType<typeof startNatsForTest>>;
  let cutoffs: TokenCutoffWatch;
  let kv: Awaited<ReturnType<Kvm["create"]>>;
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  // auth-service's public keys, as its `jwks` RPC answers them.
  let rpc: RpcClient;

  beforeAll(async () => {
    nats = await startNatsForTest();
    kv = await new Kvm(await nats.connect()).create(tokenCutoffsBucket, { history: 1 });
    cutoffs = watchTokenCutoffs(await nats.connect(), log, { retryMs: 50 });
    await cutoffs.ready;
    keys = await generateKeyPair("EdDSA", { extractable: true });
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "EdDSA", use: "sig" };
    rpc = { call: async () => ({ keys: [jwk] }) } as unknown as RpcClient;
  });
  afterAll(async () => {
    await cutoffs?.stop();
    await nats?.stop();
  });

  const sign = (userId: string, iat: number, exp: number, key = keys.privateKey) =>
    new SignJWT({ role: "user", tier: "free", typ: "access" }).setProtectedHeader({ alg: "EdDSA", kid: "k1" }).setIssuer("cutroom").setSubject(userId).setIssuedAt(iat).setExpirationTime(exp).sign(key);

  it("refuses a token revoked after it was verified and remembered", async () => {
    const verifier = createTokenVerifier(rpc, cutoffs);
    const userId = randomUUID();
    const iat = Math.floor(Date.now() / 1000) - 10;
    const token = await sign(userId, iat, iat + 900);
    expect(await verifyOrThrow(verifier, token)).toEqual({ user_id: userId, role: "user", tier: "free" });
    expect(await verifyOrThrow(verifier, token)).toMatchObject({ user_id: userId });

    // An admin's change (or a sign-out everywhere) moves the user's cutoff past the token's iat.
    await kv.put(userId, JSON.stringify({ tokens_valid_after: new Date((iat + 1) * 1000).toISOString(), disabled: false }));
    await verifier.userChanged(userId);
    await expect(verifyOrThrow(verifier, token)).rejects.toMatchObject({ code: "UNAUTHORIZED", status: 401 });

    await kv.put(userId, JSON.stringify({ tokens_valid_after: new Date((iat + 1) * 1000).toISOString(), disabled: true }));
    await verifier.userChanged(userId);
    await expect(verifyOrThrow(verifier, token)).rejects.toMatchObject({ code: "ACCOUNT_DISABLED" });
  });

  it("refuses a remembered token once it has expired", async () => {
    let now = Date.now();
    const verifier = createTokenVerifier(rpc, cutoffs, { now: () => now });
    const iat = Math.floor(now / 1000);
    const token = await sign(randomUUID(), iat, iat + 5);
    await expect(verifyOrThrow(verifier, token)).resolves.toMatchObject({ role: "user" });
    now += 4_000;
    await expect(verifyOrThrow(verifier, token)).resolves.toMatchObject({ role: "user" });
    now += 2_000;
    await expect(verifyOrThrow(verifier, token)).rejects.toMatchObject({ code: "UNAUTHORIZED", message: "invalid or expired access token" });
  });

  it("refuses a token signed with another key every time, also when many ask at once", async () => {
    const verifier = createTokenVerifier(rpc, cutoffs);
    const other = await generateKeyPair("EdDSA");
    const iat = Math.floor(Date.now() / 1000);
    const forged = await sign(randomUUID(), iat, iat + 900, other.privateKey);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => verifyOrThrow(verifier, forged)));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    await expect(verifyOrThrow(verifier, forged)).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    // A good token for the same user still passes: nothing of the forged one was remembered as good.
    await expect(verifyOrThrow(verifier, await sign(randomUUID(), iat, iat + 900))).resolves.toMatchObject({ role: "user" });
  });
});
