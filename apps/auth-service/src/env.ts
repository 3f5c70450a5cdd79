import { BaseEnv, DbEnv, loadEnv } from "@cutroom/runtime";
import { z } from "zod";

export const Env = BaseEnv.extend(DbEnv.shape).extend({
  /** Lifetime of an access token (JWT); short, since a client refreshes it anyway and a stolen one lasts this long. */
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().positive().default(900),
  /** Lifetime of a refresh token; each refresh rotates it and starts this clock again. */
  REFRESH_TOKEN_TTL_SECONDS: z.coerce.number().int().positive().default(30 * 24 * 60 * 60),
  /** Credits a new account starts with (registration, and admins made with npm run admin); 0 for none. */
  SIGNUP_CREDITS: z.coerce.number().int().min(0).max(1_000_000).default(100),
  // Sign-in throttling answers 429 with Retry-After. Addresses are as the gateway sees them (its TRUST_PROXY).
  /** Failed sign-ins one account (email) may have per window before every sign-in to it waits; 0 turns it off. */
  AUTH_LOGIN_FAILURES_PER_ACCOUNT: z.coerce.number().int().min(0).default(10),
  /** The window of AUTH_LOGIN_FAILURES_PER_ACCOUNT, in seconds. */
  AUTH_LOGIN_FAILURES_WINDOW_SECONDS: z.coerce.number().int().positive().max(86_400).default(15 * 60),
  /** Sign-in attempts, right or wrong, one client address may make per minute; 0 turns it off. */
  AUTH_LOGINS_PER_ADDRESS_PER_MINUTE: z.coerce.number().int().min(0).default(30),
  /** Registrations one client address may make per hour; 0 turns it off. */
  AUTH_REGISTRATIONS_PER_ADDRESS_PER_HOUR: z.coerce.number().int().min(0).default(10),
  /** Token refreshes one client address may make per minute; 0 turns it off. */
  AUTH_REFRESHES_PER_ADDRESS_PER_MINUTE: z.coerce.number().int().min(0).default(60),
});
export type Env = z.output<typeof Env>;
export const readEnv = () => loadEnv(Env);
