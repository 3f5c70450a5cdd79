import { createBillingHandlers } from "@cutroom/billing-service";
import { AccessClaims, type Caller } from "@cutroom/contracts";
import { createRpcClient, serveRpc, type CallContext } from "@cutroom/runtime";
import { createMigratedDb, silentLogger, startTestNats } from "@cutroom/testing";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import { promoteToAdmin } from "./admins.ts";
import { createAuthHandlers, loadSigningKey, openTokenCutoffs, type AuthDeps } from "./app.ts";
import { defaultThrottleLimits, type ThrottleLimits } from "./throttle.ts";

export const PASSWORD = "correct horse battery staple";

/**
 * Test fixture: a database and nats-server of the test file's own, with the real billing and
 * auth handlers served on it, and a client that calls them as the gateway would.
 */
export async function startAuthStack(opts: { signupCredits?: number; throttle?: Partial<ThrottleLimits> } = {}) {
  const database = await createMigratedDb("auth");
  const nats = await startTestNats();
  const nc = await nats.connect();
  const log = silentLogger();
  serveRpc(nc, "billing", createBillingHandlers({ db: database.db }), log);
  const deps: AuthDeps = {
    db: database.db,
    rpc: createRpcClient(nc, { timeoutMs: 5000 }),
    signingKey: await loadSigningKey(database.db),
    accessTokenTtlSeconds: 900,
    refreshTokenTtlSeconds: 3600,
    signupCredits: opts.signupCredits ?? 100,
    throttle: { ...defaultThrottleLimits, ...opts.throttle },
    cutoffs: await openTokenCutoffs(nc),
  };
  serveRpc(nc, "auth", createAuthHandlers(deps), log);
  const client = createRpcClient(await nats.connect(), { timeoutMs: 10_000 });
  const jwks = createLocalJWKSet((await client.call("auth", "jwks", {})) as JSONWebKeySet);

  /** What the gateway does with a bearer token: verify it locally, then call on the user's behalf. */
  const verify = (accessToken: string) => jwtVerify(accessToken, jwks, { issuer: "cutroom", algorithms: ["EdDSA"] });
  const as = async (accessToken: string): Promise<CallContext> => {
    const claims = AccessClaims.parse((await verify(accessToken)).payload);
    const caller: Caller = { user_id: claims.sub, role: claims.role, tier: claims.tier };
    return { caller };
  };
  const register = (email: string, password = PASSWORD) => client.call("auth", "register", { email, password, full_name: "Test User" });
  const login = (email: string, password = PASSWORD) => client.call("auth", "login", { email, password });
  const refresh = (refresh_token: string) => client.call("auth", "refresh", { refresh_token });
  /** What an operator's `npm run admin -- promote` does. */
  const makeAdmin = (email: string) => promoteToAdmin(database.db, { email, signupCredits: deps.signupCredits });

  return {
    db: database.db,
    deps,
    log,
    nats,
    client,
    verify,
    as,
    register,
    login,
    refresh,
    makeAdmin,
    stop: async () => {
      await nats.stop();
      await database.close();
    },
  };
}
export type AuthStack = Awaited<ReturnType<typeof startAuthStack>>;
