import { AccessClaims, AppError, type Caller } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import type { TokenCutoffWatch } from "../token-cutoffs.ts";

declare module "fastify" {
  interface FastifyRequest {
    caller: Caller | null;
  }
  interface FastifyInstance {
    authenticate: (req: FastifyRequest) => Promise<void>;
    requireAdmin: (req: FastifyRequest) => Promise<void>;
    /** After an admin changed a user: their older tokens stop working on this gateway now, not when the watch delivers it. */
    userChanged: (userId: string) => Promise<void>;
  }
}

const REFRESH_EVERY_MS = 5_000;

/**
 * Verifies access tokens locally with auth-service's public keys (EdDSA only: `none` and
 * HS256-with-the-public-key are refused by construction). Unknown key ids trigger a re-fetch.
 * A valid signature is not enough: a token issued before its user's role, tier or disabled state
 * last changed is refused (`cutoffs`).
 */
export function createTokenVerifier(rpc: RpcClient, cutoffs: Pick<TokenCutoffWatch, "check" | "sync">) {
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = 0;
  const refresh = async () => {
    if (Date.now() - fetchedAt < REFRESH_EVERY_MS && keys) return;
    fetchedAt = Date.now();
    const jwks = await rpc.call("auth", "jwks", {});
    keys = createLocalJWKSet(jwks as JSONWebKeySet);
  };
  const verifyOnce = async (token: string) => {
    const { payload } = await jwtVerify(token, keys!, { algorithms: ["EdDSA"], issuer: "cutroom" });
    return AccessClaims.parse(payload);
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
      const claims = await verifySignature(token);
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

export const authPlugin = fp(async (app: FastifyInstance, opts: { verifier: TokenVerifier }) => {
  app.decorateRequest("caller", null);
  app.decorate("authenticate", async (req: FastifyRequest) => {
    const token = bearerToken(req);
    if (!token) throw new AppError("UNAUTHORIZED", "a Bearer access token is required");
    req.caller = await verifyOrThrow(opts.verifier, token);
  });
  app.decorate("requireAdmin", async (req: FastifyRequest) => {
    await app.authenticate(req);
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
