import { AppError } from "@cutroom/contracts";
import type { RpcClient, RpcContext } from "@cutroom/runtime";

/** Sign-in limits; 0 turns one off. See docs/adr/011-sign-in-throttling.md. */
export interface ThrottleLimits {
  loginFailuresPerAccount: number;
  loginFailuresWindowSeconds: number;
  loginsPerAddressPerMinute: number;
  registrationsPerAddressPerHour: number;
  refreshesPerAddressPerMinute: number;
}

export const defaultThrottleLimits: ThrottleLimits = {
  loginFailuresPerAccount: 10,
  loginFailuresWindowSeconds: 15 * 60,
  loginsPerAddressPerMinute: 30,
  registrationsPerAddressPerHour: 10,
  refreshesPerAddressPerMinute: 60,
};

interface Window {
  bucket: string;
  limit: number;
  seconds: number;
  refusal: string;
}

/**
 * Guesses at passwords and sign-up floods, counted in billing's Postgres windows so every replica
 * shares them. Per account (email, whether or not it exists: a 429 must not tell which do) and per
 * client address as the gateway saw it.
 */
export function createThrottle(rpc: RpcClient, limits: ThrottleLimits) {
  const account: Window = {
    bucket: "auth.login.account",
    limit: limits.loginFailuresPerAccount,
    seconds: limits.loginFailuresWindowSeconds,
    refusal: "too many failed sign-ins for this account",
  };
  const logins: Window = { bucket: "auth.login.address", limit: limits.loginsPerAddressPerMinute, seconds: 60, refusal: "too many sign-in attempts from this address" };
  const registrations: Window = {
    bucket: "auth.register.address",
    limit: limits.registrationsPerAddressPerHour,
    seconds: 3600,
    refusal: "too many registrations from this address",
  };
  const refreshes: Window = { bucket: "auth.refresh.address", limit: limits.refreshesPerAddressPerMinute, seconds: 60, refusal: "too many token refreshes from this address" };

  const take = async (w: Window, key: string | null | undefined, ctx: RpcContext, cost: 1 | -1 = 1) => {
    if (w.limit <= 0 || !key) return;
    const d = await rpc.call("billing", "throttle", { bucket: w.bucket, key, limit: w.limit, window_seconds: w.seconds, cost }, { requestId: ctx.requestId });
    if (cost === 1 && !d.allowed) {
      const retryAfter = Math.max(1, d.reset - Math.floor(Date.now() / 1000));
      throw new AppError("RATE_LIMITED", `${w.refusal}; try again in ${retryAfter} s`, { retry_after: retryAfter, limit: d.limit, reset: d.reset });
    }
  };
  const address = (ctx: RpcContext) => normalizeAddress(ctx.clientIp);

  return {
    /**
     * Before the password is checked: the attempt counts for the address, and for the account until it
     * proves right (counted first, so parallel guesses cannot slip past the limit).
     */
    async login(email: string, ctx: RpcContext) {
      const taken = await Promise.allSettled([take(logins, address(ctx), ctx), take(account, email, ctx)]);
      const refused = taken.find((t) => t.status === "rejected");
      if (refused) throw refused.reason;
    },
    /** The right password: the account gets its unit back, so only failures count against it. */
    loginSucceeded: (email: string, ctx: RpcContext) => take(account, email, ctx, -1),
    register: (ctx: RpcContext) => take(registrations, address(ctx), ctx),
    refresh: (ctx: RpcContext) => take(refreshes, address(ctx), ctx),
  };
}
export type Throttle = ReturnType<typeof createThrottle>;

// An IPv4 client seen on a dual-stack socket is the same client as its plain IPv4 form.
const normalizeAddress = (ip: string | null | undefined) => (ip?.startsWith("::ffff:") ? ip.slice(7) : ip);
