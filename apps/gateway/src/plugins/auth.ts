import { AccessClaims, AppError, type Caller } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { createHash } from "node:crypto";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import type { RequestBudget } from "../request-budget.ts";
import type { TokenCutoffWatch } from "../token-cutoffs.ts";

declare module "fastify" {
  interface FastifyRequest {
    caller: Caller | null;
  }
  interface FastifyContextConfig {
    /** false: the route is not counted in the per-user request budget (job creation has its own limit). */
    requestBudget?: boolean;
  }
  interface FastifyInstance {
    /** As a route's onRequest hook (with its reply) it also takes a unit of the caller's request budget. */
    authenticate: (req: FastifyRequest, reply?: FastifyReply) => Promise<void>;
    requireAdmin: (req: FastifyRequest, reply?: FastifyReply) => Promise<void>;
    /** After an admin changed a user: their older tokens stop working on this gateway now, not when the watch delivers it. */
    userChanged: (userId: string) => Promise<void>;
  }
}

const REFRESH_EVERY_MS = 5_000;
// A verified signature is remembered this long (at most until the token expires), for this many tokens.
const VERIFIED_TTL_MS = 30_000;
const VERIFIED_MAX = 10_000;

interface Verified {
  claims: AccessClaims;
  /** Epoch ms after which the signature is checked again: the token's expiry at the latest. */
  until: number;
}

/**
 * Verifies access tokens locally with auth-service's public keys (EdDSA only: `none` and
 * HS256-with-the-public-key are refused by construction). Unknown key ids trigger a re-fetch.
 * A valid signature is not enough: a token issued before its user's role, tier or disabled state
 * last changed is refused (`cutoffs`).
 *
 * An Ed25519 check costs about half a millisecond of CPU, and a client opening a thousand
 * WebSockets sends the same token each time (docs/adr/029): a good signature is remembered for
 * 30 s, keyed by the token's SHA-256, never past the token's `exp`. The cutoffs are checked on
 * every use, so a revoked token or a disabled account is refused at once, cached or not.
 */
export function createTokenVerifier(rpc: RpcClient, cutoffs: Pick<TokenCutoffWatch, "check" | "sync">, opts: { now?: () => number } = {}) {
  const now = opts.now ?? Date.now;
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = 0;
  const verified = new Map<string, Promise<Verified>>();
  const refresh = async () => {
    if (Date.now() - fetchedAt < REFRESH_EVERY_MS && keys) return;
    fetchedAt = Date.now();
    const jwks = await rpc.call("auth", "jwks", {});
    keys = createLocalJWKSet(jwks as JSONWebKeySet);
  };
  const verifyOnce = async (token: string): Promise<Verified> => {
    const at = now();
    const { payload } = await jwtVerify(token, keys!, { algorithms: ["EdDSA"], issuer: "cutroom", currentDate: new Date(at) });
    return { claims: AccessClaims.parse(payload), until: Math.min(at + VERIFIED_TTL_MS, typeof payload.exp === "number" ? payload.exp * 1000 : at) };
  };
  /** One check per token at a time: clients opening many sockets at once with one token share it. */
  const verifyCached = async (token: string): Promise<AccessClaims> => {
    const key = createHash("sha256").update(token).digest("base64url");
    const known = verified.get(key);
    if (known) {
      const { claims, until } = await known;
      if (until > now()) return claims;
      if (verified.get(key) === known) verified.delete(key);
    }
    let entry = verified.get(key);
    if (!entry) {
      if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value!);
      entry = verifySignature(token);
      verified.set(key, entry);
      entry.then(
        (v) => v.until <= now() && verified.get(key) === entry && verified.delete(key),
        () => verified.get(key) === entry && verified.delete(key),
      );
    }
    return (await entry).claims;
  };
  const verifySignature = async (token: string) => {
    try {
      return await verifyOnce(token);
    } catch (err) {
      if ((err as { code?: string }).code === "ERR_JWKS_NO_MATCHING_KEY") {
        await refresh().catch(() => {});
        return verifyOnce(token);
      }
      throw err;
    }
  };
  return {
    refresh,
    userChanged: (userId: string) => cutoffs.sync(userId),
    async verify(token: string): Promise<Caller> {
      if (!keys) await refresh();
      const claims = await verifyCached(token);
      cutoffs.check(claims.sub, claims.iat);
      return { user_id: claims.sub, role: claims.role, tier: claims.tier } satisfies Caller;
    },
  };
}
export type TokenVerifier = ReturnType<typeof createTokenVerifier>;

export function bearerToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (header?.startsWith("Bearer ")) return header.slice(7).trim();
  return undefined;
}

export const authPlugin = fp(async (app: FastifyInstance, opts: { verifier: TokenVerifier; budget?: RequestBudget }) => {
  app.decorateRequest("caller", null);
  app.decorate("authenticate", async (req: FastifyRequest, reply?: FastifyReply) => {
    const token = bearerToken(req);
    if (!token) throw new AppError("UNAUTHORIZED", "a Bearer access token is required");
    req.caller = await verifyOrThrow(opts.verifier, token);
    // Once per HTTP request (a WebSocket's upgrade included); the frames on a socket never pass here.
    if (opts.budget && reply && req.routeOptions.config.requestBudget !== false) await opts.budget.take(req.caller, reply);
  });
  app.decorate("requireAdmin", async (req: FastifyRequest, reply?: FastifyReply) => {
    await app.authenticate(req, reply);
    if (req.caller?.role !== "admin") throw new AppError("FORBIDDEN", "admins only");
  });
  app.decorate("userChanged", async (userId: string) => {
    // The change is made; should this read fail, the watch still delivers it within moments.
    await opts.verifier.userChanged(userId).catch((err: unknown) => app.log.warn({ err, user_id: userId }, "could not read the user's token cutoff"));
  });
});

export async function verifyOrThrow(verifier: TokenVerifier, token: string): Promise<Caller> {
  try {
    return await verifier.verify(token);
  } catch (err) {
    // Our own refusals (a revoked token, a disabled account, auth unreachable) say what happened.
    if (err instanceof AppError) throw err;
    throw new AppError("UNAUTHORIZED", "invalid or expired access token");
  }
}
