import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JWK } from "jose";
import type { Role, Tier } from "@cutroom/contracts";
import { asc, desc, type Db } from "@cutroom/db";
import { signingKeys } from "@cutroom/db/auth";

export const ISSUER = "cutroom";
const ALG = "EdDSA";

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey | Uint8Array;
}

const newest = (db: Db) => db.select().from(signingKeys).orderBy(desc(signingKeys.createdAt), desc(signingKeys.kid)).limit(1);

/**
 * The newest Ed25519 key, made and stored on first start. Replicas starting together may each
 * insert one; that is harmless, since every stored key is published in the JWKS and verifies.
 */
export async function loadSigningKey(db: Db): Promise<SigningKey> {
  let [row] = await newest(db);
  if (!row) {
    const { publicKey, privateKey } = await generateKeyPair(ALG, { crv: "Ed25519", extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    await db.insert(signingKeys).values({ kid, publicJwk, privateJwk: await exportJWK(privateKey) }).onConflictDoNothing();
    [row] = await newest(db);
  }
  if (!row) throw new Error("no signing key after inserting one");
  return { kid: row.kid, privateKey: await importJWK(row.privateJwk as JWK, ALG) };
}

/** Every stored public key, in the form a JWT verifier (the gateway) loads. */
export async function listPublicJwks(db: Db) {
  const rows = await db.select({ kid: signingKeys.kid, publicJwk: signingKeys.publicJwk }).from(signingKeys).orderBy(asc(signingKeys.createdAt));
  return rows.map((r) => ({ ...(r.publicJwk as JWK), kid: r.kid, alg: ALG, use: "sig" }));
}

/** An access token carrying AccessClaims, issued at `now` (unix seconds); `ttlSeconds` from issue to expiry. */
export function signAccessToken(key: SigningKey, user: { id: string; role: Role; tier: Tier }, ttlSeconds: number, now = Math.floor(Date.now() / 1000)): Promise<string> {
  return new SignJWT({ role: user.role, tier: user.tier, typ: "access" })
    .setProtectedHeader({ alg: ALG, kid: key.kid, typ: "JWT" })
    .setSubject(user.id)
    .setIssuer(ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(key.privateKey);
}
