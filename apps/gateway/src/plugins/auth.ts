import { AccessClaims, AppError, type Caller } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";

declare module "fastify" {
  interface FastifyRequest {
    caller: Caller | null;
  }
  interface FastifyInstance {
    authenticate: (req: FastifyRequest) => Promise<void>;
    requireAdmin: (req: FastifyRequest) => Promise<void>;
  }
}

const REFRESH_EVERY_MS = 5_000;

/**
 * Verifies access tokens locally with auth-service's public keys (EdDSA only: `none` and
 * HS256-with-the-public-key are refused by construction). Unknown key ids trigger a re-fetch.
 */
export function createTokenVerifier(rpc: RpcClient) {
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
    const claims = AccessClaims.parse(payload);
    return { user_id: claims.sub, role: claims.role, tier: claims.tier } satisfies Caller;
  };
  return {
    refresh,
    async verify(token: string): Promise<Caller> {
      if (!keys) await refresh();
      try {
        return await verifyOnce(token);
      } catch (err) {
        if ((err as { code?: string }).code === "ERR_JWKS_NO_MATCHING_KEY") {
          await refresh().catch(() => {});
          return verifyOnce(token);
        }
        throw err;
      }
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
});

export async function verifyOrThrow(verifier: TokenVerifier, token: string): Promise<Caller> {
  try {
    return await verifier.verify(token);
  } catch (err) {
    if (err instanceof AppError && err.code === "SERVICE_UNAVAILABLE") throw err;
    throw new AppError("UNAUTHORIZED", "invalid or expired access token");
  }
}
