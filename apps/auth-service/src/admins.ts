import { randomBytes } from "node:crypto";
import { openAccount } from "@cutroom/billing-service/ledger";
import { eq, type Db } from "@cutroom/db";
import { users } from "@cutroom/db/auth";
import { assertPasswordAllowed } from "./password-policy.ts";
import { hashPassword } from "./passwords.ts";
import { getUserByEmail, insertUser, type UserRow } from "./users.ts";

export interface AdminResult {
  user: UserRow;
  /** Promoting an admin changes nothing. */
  wasAdmin?: boolean;
  /** The generated password of a new account, when none was given. */
  generatedPassword?: string;
  credits: number;
}

/**
 * An operator's command, not an API: a new account with role admin, and its credit account (the
 * same sign-up credits as a registration). Refuses an email that has an account: `promoteToAdmin`.
 */
export async function createAdmin(db: Db, opts: { email: string; password?: string; fullName?: string; signupCredits: number }): Promise<AdminResult> {
  const email = opts.email.trim().toLowerCase();
  const generatedPassword = opts.password === undefined ? randomBytes(18).toString("base64url") : undefined;
  const password = opts.password ?? generatedPassword!;
  if (password.length < 8) throw new Error("the password must be at least 8 characters");
  assertPasswordAllowed(password, email);
  const user = await insertUser(db, { email, passwordHash: await hashPassword(password), fullName: opts.fullName ?? email.split("@")[0]!, role: "admin" });
  if (!user) throw new Error(`${email} has an account already: promote it instead`);
  // billing's own function on the same database, so that the command needs no running service.
  const { credits } = await openAccount(db, user.id, opts.signupCredits);
  return { user, generatedPassword, credits };
}

/**
 * Gives an existing account role admin (and opens its credit account if it has none). Tokens it
 * holds keep saying "user" until it signs in again or refreshes: fewer rights, never more.
 */
export async function promoteToAdmin(db: Db, opts: { email: string; signupCredits: number }): Promise<AdminResult> {
  const email = opts.email.trim().toLowerCase();
  const existing = await getUserByEmail(db, email);
  if (!existing) throw new Error(`no account with the email ${email}: create-admin makes one`);
  const [user] = await db.update(users).set({ role: "admin" }).where(eq(users.id, existing.id)).returning();
  const { credits } = await openAccount(db, existing.id, opts.signupCredits);
  return { user: user!, credits, wasAdmin: existing.role === "admin" };
}
