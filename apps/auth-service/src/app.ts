import { randomUUID } from "node:crypto";
import { AppError, isAppError, tierLimits, toPage, type Caller, type User } from "@cutroom/contracts";
import { sqlTag as sql, type Db } from "@cutroom/db";
import { runChecks, type RpcClient, type RpcContext, type RpcHandlers } from "@cutroom/runtime";
import { checkPassword, hashPassword } from "./passwords.ts";
import { findRefreshToken, issueRefreshToken, revokeAllForUser, revokeFamily, rotateRefreshToken } from "./refresh-tokens.ts";
import { listPublicJwks, signAccessToken, type SigningKey } from "./signing-keys.ts";
import { createThrottle, type ThrottleLimits } from "./throttle.ts";
import { countUsers, deleteUser, getUser, getUserByEmail, insertUser, listUsers, recordLogin, updateUser, type UserRow } from "./users.ts";

export { loadSigningKey } from "./signing-keys.ts";

export interface AuthDeps {
  db: Db;
  /** Reaches billing, which keeps the credit accounts. */
  rpc: RpcClient;
  signingKey: SigningKey;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  /** Lower-case emails that register as admins. */
  adminEmails: readonly string[];
  /** Sign-in and sign-up limits per account and per client address. */
  throttle: ThrottleLimits;
}

/** auth-service: accounts, passwords, access tokens (EdDSA JWTs) and rotating refresh tokens. */
export function createAuthHandlers(deps: AuthDeps): RpcHandlers<"auth"> {
  const { db, rpc, signingKey, accessTokenTtlSeconds, refreshTokenTtlSeconds } = deps;
  const adminEmails = new Set(deps.adminEmails.map((e) => e.toLowerCase()));
  const throttle = createThrottle(rpc, deps.throttle);

  const tokenPair = async (user: UserRow, refreshToken: string) => ({
    access_token: await signAccessToken(signingKey, user, accessTokenTtlSeconds),
    refresh_token: refreshToken,
    token_type: "Bearer" as const,
    expires_in: accessTokenTtlSeconds,
  });

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
      const role = adminEmails.has(email) ? "admin" : "user";
      const user = await insertUser(db, { email, passwordHash: await hashPassword(password), fullName: full_name, role });
      if (!user) throw new AppError("EMAIL_TAKEN", "an account with this email already exists");
      try {
        const { credits } = await rpc.call("billing", "openAccount", { user_id: user.id, credits: tierLimits.free.signupCredits }, { requestId: ctx.requestId });
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
      await recordLogin(db, user.id);
      // Each login starts a new refresh-token family.
      return tokenPair(user, await issueRefreshToken(db, user.id, randomUUID(), refreshTokenTtlSeconds));
    },

    refresh: async ({ refresh_token }, ctx) => {
      await throttle.refresh(ctx);
      const rotation = await rotateRefreshToken(db, refresh_token, refreshTokenTtlSeconds);
      if (rotation.status === "reused") {
        ctx.log.warn({ user_id: rotation.userId, family_id: rotation.familyId, revoked: rotation.revoked }, "refresh token reused: family revoked");
      }
      if (rotation.status !== "rotated") throw new AppError("UNAUTHORIZED", "refresh token is invalid, expired or revoked");
      const user = await getUser(db, rotation.userId);
      if (!user) throw new AppError("UNAUTHORIZED", "refresh token is invalid, expired or revoked");
      return tokenPair(user, rotation.refreshToken);
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
      requireAdmin(ctx);
      const { rows, total } = await listUsers(db, p.limit, p.offset);
      return toPage(await Promise.all(rows.map((u) => withCredits(u, ctx))), total, p);
    },

    updateUser: async ({ user_id, role, tier }, ctx) => {
      requireAdmin(ctx);
      const user = await updateUser(db, user_id, { role, tier });
      if (!user) throw new AppError("NOT_FOUND", "no such user");
      return withCredits(user, ctx);
    },

    stats: async (_body, ctx) => {
      requireAdmin(ctx);
      const { total, today } = await countUsers(db);
      return { total_users: total, users_today: today };
    },
  };
}

function requireCaller(ctx: RpcContext): Caller {
  if (!ctx.caller) throw new AppError("UNAUTHORIZED", "sign in first");
  return ctx.caller;
}

// The gateway checks the role too; this keeps a direct NATS caller from skipping it.
function requireAdmin(ctx: RpcContext): Caller {
  const caller = requireCaller(ctx);
  if (caller.role !== "admin") throw new AppError("FORBIDDEN", "admins only");
  return caller;
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
  };
}
