import { randomUUID } from "node:crypto";
import { AppError, isAppError, toPage, type Caller, type User } from "@cutroom/contracts";
import { sqlTag as sql, type Db } from "@cutroom/db";
import { runChecks, type RpcClient, type RpcContext, type RpcHandlers } from "@cutroom/runtime";
import { assertPasswordAllowed } from "./password-policy.ts";
import { checkPassword, hashPassword } from "./passwords.ts";
import { findRefreshToken, issueRefreshToken, revokeAllForUser, revokeFamily, rotateRefreshToken } from "./refresh-tokens.ts";
import { listPublicJwks, signAccessToken, type SigningKey } from "./signing-keys.ts";
import { createThrottle, type ThrottleLimits } from "./throttle.ts";
import { cutoffOf, type TokenCutoffs } from "./token-cutoffs.ts";
import { createWorkerTokenHandlers } from "./worker-tokens.ts";
import { changeUser, countUsers, deleteUser, getUser, getUserByEmail, insertUser, listUsers, recordLogin, withUserForIssue, type UserRow } from "./users.ts";

export { loadSigningKey } from "./signing-keys.ts";
export { openTokenCutoffs, republishRecentCutoffs, type TokenCutoffs } from "./token-cutoffs.ts";

export interface AuthDeps {
  db: Db;
  /** Reaches billing, which keeps the credit accounts. */
  rpc: RpcClient;
  signingKey: SigningKey;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  /** Credits a new account starts with (SIGNUP_CREDITS). */
  signupCredits: number;
  /** Sign-in and sign-up limits per account and per client address. */
  throttle: ThrottleLimits;
  /** Tells the gateways when a user's access tokens stop counting. */
  cutoffs: TokenCutoffs;
}

const disabled = () => new AppError("ACCOUNT_DISABLED", "this account is disabled; an administrator can enable it again");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** auth-service: accounts, passwords, access tokens (EdDSA JWTs) and rotating refresh tokens. */
export function createAuthHandlers(deps: AuthDeps): RpcHandlers<"auth"> {
  const { db, rpc, signingKey, accessTokenTtlSeconds, refreshTokenTtlSeconds, cutoffs } = deps;
  const throttle = createThrottle(rpc, deps.throttle);

  /**
   * An access token with the user's current role and tier. Gateways refuse tokens issued in the
   * second of a change or before (whole seconds: `iat`), so right after a change this waits for
   * the next second rather than hand out a token that would be refused.
   */
  const issueAccessToken = async (userId: string): Promise<string> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const issued = await withUserForIssue<{ token: string } | { waitMs: number }>(db, userId, async (user, now) => {
        if (!user) throw new AppError("UNAUTHORIZED", "this account no longer exists");
        if (user.disabledAt) throw disabled();
        const iat = Math.floor(now.getTime() / 1000);
        const cutoff = user.tokensValidAfter ? Math.floor(user.tokensValidAfter.getTime() / 1000) : -Infinity;
        if (iat <= cutoff) return { waitMs: (cutoff + 1) * 1000 - now.getTime() };
        return { token: await signAccessToken(signingKey, user, accessTokenTtlSeconds, iat) };
      });
      if ("token" in issued) return issued.token;
      await sleep(Math.min(issued.waitMs, 1000) + 5);
    }
    throw new AppError("SERVICE_UNAVAILABLE", "the account changed a moment ago; try again", { service: "auth" });
  };

  const tokenPair = async (accessToken: string, refreshToken: string) => ({
    access_token: accessToken,
    refresh_token: refreshToken,
    token_type: "Bearer" as const,
    expires_in: accessTokenTtlSeconds,
  });

  // The role in the token may be minutes old (a demoted admin's); the database's is current.
  const requireAdmin = async (ctx: RpcContext): Promise<UserRow> => {
    const caller = requireCaller(ctx);
    const user = await getUser(db, caller.user_id);
    if (!user || user.disabledAt || user.role !== "admin") throw new AppError("FORBIDDEN", "admins only");
    return user;
  };

  const creditsOf = async (user: UserRow, ctx: RpcContext) => {
    try {
      const balance = await rpc.call("billing", "balance", { user_id: user.id, tier: user.tier }, { requestId: ctx.requestId, caller: ctx.caller });
      return balance.credits;
    } catch (err) {
      // A user whose sign-up grant never landed has no account yet: zero credits, not an error.
      if (isAppError(err) && err.code === "NOT_FOUND") return 0;
      throw err;
    }
  };

  const withCredits = async (user: UserRow, ctx: RpcContext) => toUser(user, await creditsOf(user, ctx));

  return {
    health: async () => runChecks("auth", { database: () => db.execute(sql`select 1`) }),

    register: async ({ email, password, full_name }, ctx) => {
      await throttle.register(ctx);
      assertPasswordAllowed(password, email);
      // Every account starts as a user; admins are made by an operator (npm run admin).
      const user = await insertUser(db, { email, passwordHash: await hashPassword(password), fullName: full_name, role: "user" });
      if (!user) throw new AppError("EMAIL_TAKEN", "an account with this email already exists");
      try {
        const { credits } = await rpc.call("billing", "openAccount", { user_id: user.id, credits: deps.signupCredits }, { requestId: ctx.requestId });
        return { user_id: user.id, email: user.email, tier: user.tier, credits };
      } catch (err) {
        // Without a credit account the user could never spend; undo so the same email can register again.
        await deleteUser(db, user.id);
        throw err;
      }
    },

    login: async ({ email, password }, ctx) => {
      await throttle.login(email, ctx);
      const user = await getUserByEmail(db, email);
      const ok = await checkPassword(user?.passwordHash ?? null, password);
      if (!user || !ok) throw new AppError("INVALID_CREDENTIALS", "email or password is incorrect");
      await throttle.loginSucceeded(email, ctx);
      const accessToken = await issueAccessToken(user.id);
      await recordLogin(db, user.id);
      // Each login starts a new refresh-token family.
      return tokenPair(accessToken, await issueRefreshToken(db, user.id, randomUUID(), refreshTokenTtlSeconds));
    },

    refresh: async ({ refresh_token }, ctx) => {
      await throttle.refresh(ctx);
      const rotation = await rotateRefreshToken(db, refresh_token, refreshTokenTtlSeconds);
      if (rotation.status === "reused") {
        ctx.log.warn({ user_id: rotation.userId, family_id: rotation.familyId, revoked: rotation.revoked }, "refresh token reused: family revoked");
      }
      if (rotation.status !== "rotated") {
        // Disabling revoked the token: say why, rather than leave the client to guess.
        const row = await findRefreshToken(db, refresh_token);
        if (row?.revokedAt && (await getUser(db, row.userId))?.disabledAt) throw disabled();
        throw new AppError("UNAUTHORIZED", "refresh token is invalid, expired or revoked");
      }
      try {
        return tokenPair(await issueAccessToken(rotation.userId), rotation.refreshToken);
      } catch (err) {
        // Disabled while this refresh was under way: its new refresh token must not outlive it.
        if (isAppError(err) && err.code === "ACCOUNT_DISABLED") await revokeAllForUser(db, rotation.userId);
        throw err;
      }
    },

    logout: async ({ refresh_token }, ctx) => {
      const caller = requireCaller(ctx);
      if (refresh_token === undefined) return { revoked: await revokeAllForUser(db, caller.user_id) };
      const row = await findRefreshToken(db, refresh_token);
      if (!row || row.userId !== caller.user_id) return { revoked: 0 };
      return { revoked: await revokeFamily(db, row.familyId) };
    },

    me: async (_body, ctx) => {
      const caller = requireCaller(ctx);
      const user = await getUser(db, caller.user_id);
      if (!user) throw new AppError("UNAUTHORIZED", "this account no longer exists");
      return withCredits(user, ctx);
    },

    jwks: async () => ({ keys: await listPublicJwks(db) }),

    listUsers: async (p, ctx) => {
      await requireAdmin(ctx);
      const { rows, total } = await listUsers(db, p.limit, p.offset);
      return toPage(await Promise.all(rows.map((u) => withCredits(u, ctx))), total, p);
    },

    updateUser: async ({ user_id, role, tier, disabled }, ctx) => {
      const admin = await requireAdmin(ctx);
      const result = await changeUser(db, user_id, { role, tier, disabled });
      if (!result) throw new AppError("NOT_FOUND", "no such user");
      if (result.changed) ctx.log.info({ admin_id: admin.id, user_id, role, tier, disabled }, "user changed by an admin: their tokens were revoked");
      // Published whether or not this call changed anything, so that retrying after a failed publish reaches the gateways.
      const cutoff = cutoffOf(result.user);
      if (cutoff) await cutoffs.publish(user_id, cutoff);
      return withCredits(result.user, ctx);
    },

    grantCredits: async ({ user_id, amount, note }, ctx) => {
      const admin = await requireAdmin(ctx);
      const granted = await rpc.call("billing", "grant", { user_id, amount, note }, { requestId: ctx.requestId, caller: ctx.caller });
      ctx.log.info({ admin_id: admin.id, user_id, amount }, "credits granted by an admin");
      return granted;
    },

    stats: async (_body, ctx) => {
      await requireAdmin(ctx);
      const { total, today } = await countUsers(db);
      return { total_users: total, users_today: today };
    },

    ...createWorkerTokenHandlers(db, requireAdmin),
  };
}

function requireCaller(ctx: RpcContext): Caller {
  if (!ctx.caller) throw new AppError("UNAUTHORIZED", "sign in first");
  return ctx.caller;
}

function toUser(u: UserRow, credits: number): User {
  return {
    user_id: u.id,
    email: u.email,
    full_name: u.fullName,
    tier: u.tier,
    role: u.role,
    credits,
    created_at: u.createdAt.toISOString(),
    last_login: u.lastLogin?.toISOString() ?? null,
    disabled: u.disabledAt !== null,
  };
}
