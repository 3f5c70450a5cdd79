import { index, jsonb, pgSchema, text, timestamp, uuid } from "drizzle-orm/pg-core";

export const auth = pgSchema("auth");

export const users = auth.table("users", {
  id: uuid("id").primaryKey(),
  email: text("email").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  fullName: text("full_name").notNull(),
  role: text("role", { enum: ["user", "admin"] }).notNull().default("user"),
  tier: text("tier", { enum: ["free", "pro", "enterprise"] }).notNull().default("free"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  lastLogin: timestamp("last_login", { withTimezone: true }),
  /** Set while the account is disabled: no sign-in, no refresh. */
  disabledAt: timestamp("disabled_at", { withTimezone: true }),
  /** Access tokens issued in this second or earlier no longer count (a role, tier or disabled change). */
  tokensValidAfter: timestamp("tokens_valid_after", { withTimezone: true }),
});

/** Refresh tokens are stored hashed; a family is one login's chain of rotations. */
export const refreshTokens = auth.table(
  "refresh_tokens",
  {
    id: uuid("id").primaryKey(),
    userId: uuid("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
    familyId: uuid("family_id").notNull(),
    tokenHash: text("token_hash").notNull().unique(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    usedAt: timestamp("used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [index("refresh_tokens_family_idx").on(t.familyId), index("refresh_tokens_user_idx").on(t.userId)],
);

/** Ed25519 signing keys; the newest signs, all published keys verify. */
export const signingKeys = auth.table("signing_keys", {
  kid: text("kid").primaryKey(),
  privateJwk: jsonb("private_jwk").notNull(),
  publicJwk: jsonb("public_jwk").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Worker tokens (ADR 040): machines that lease jobs over HTTP, each scoped to job types; only the secret's SHA-256 is kept. */
export const workerTokens = auth.table("worker_tokens", {
  id: uuid("id").primaryKey(),
  name: text("name").notNull(),
  jobTypes: text("job_types").array().notNull(),
  tokenHash: text("token_hash").notNull().unique(),
  createdBy: uuid("created_by").references(() => users.id, { onDelete: "set null" }),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
  /** Set when an admin revokes it: refused from the next request on. */
  revokedAt: timestamp("revoked_at", { withTimezone: true }),
});
