import { z } from "zod";
import { Role, Tier, Timestamp, Uuid } from "./common.ts";

export const Email = z.email().max(254).transform((s) => s.toLowerCase());
export const Password = z.string().min(8, "must be at least 8 characters").max(256);

export const RegisterBody = z.object({
  email: Email,
  password: Password,
  full_name: z.string().trim().min(1).max(200),
});
export type RegisterBody = z.infer<typeof RegisterBody>;

export const RegisterReply = z.object({ user_id: Uuid, email: z.string(), tier: Tier, credits: z.number().int() });

export const LoginBody = z.object({ email: Email, password: z.string().min(1).max(256) });
export type LoginBody = z.infer<typeof LoginBody>;
/** OAuth2 password-flow form fields, as sent by form-based clients. */
export const LoginForm = z.object({ username: Email, password: z.string().min(1).max(256) });

export const TokenPair = z.object({
  access_token: z.string(),
  refresh_token: z.string(),
  token_type: z.literal("Bearer"),
  expires_in: z.number().int().describe("seconds until the access token expires"),
});
export type TokenPair = z.infer<typeof TokenPair>;

export const RefreshBody = z.object({ refresh_token: z.string().min(1).max(512) });
export const LogoutBody = z.object({ refresh_token: z.string().min(1).max(512).optional() });

export const User = z.object({
  user_id: Uuid,
  email: z.string(),
  full_name: z.string(),
  tier: Tier,
  role: Role,
  credits: z.number().int(),
  created_at: Timestamp,
  last_login: Timestamp.nullable(),
  disabled: z.boolean().describe("a disabled user cannot sign in, and their tokens no longer work"),
});
export type User = z.infer<typeof User>;

/** Claims of an access token (EdDSA-signed JWT); `iat` decides whether a token predates a change to its user. */
export const AccessClaims = z.object({ sub: Uuid, role: Role, tier: Tier, typ: z.literal("access"), iat: z.number().int() });
export type AccessClaims = z.infer<typeof AccessClaims>;

export const Jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });

export const AdminUserPatch = z.object({
  role: Role.optional(),
  tier: Tier.optional(),
  disabled: z.boolean().optional().describe("true: the user can no longer sign in and their tokens stop working; false: they may sign in again"),
});

/**
 * NATS KV bucket where auth-service publishes, per user id, which access tokens still count
 * (docs/adr/015-token-cutoffs-and-operator-admins.md); gateways watch it into memory.
 */
export const tokenCutoffsBucket = "token-cutoffs";

/** A user's entry in the token-cutoffs bucket. */
export const TokenCutoff = z.object({
  /** Tokens issued in this second or before no longer count (ISO 8601; seconds of `iat`). */
  tokens_valid_after: Timestamp,
  disabled: z.boolean(),
});
export type TokenCutoff = z.infer<typeof TokenCutoff>;
