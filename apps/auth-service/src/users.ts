import { randomUUID } from "node:crypto";
import type { Role, Tier } from "@cutroom/contracts";
import { desc, eq, gt, sqlTag as sql, type Db } from "@cutroom/db";
import { users } from "@cutroom/db/auth";
import { revokeAllForUser } from "./refresh-tokens.ts";

export type UserRow = typeof users.$inferSelect;
type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** Inserts the user, or returns null when the email is taken (the unique index decides, so races are safe). */
export async function insertUser(db: Db, u: { email: string; passwordHash: string; fullName: string; role: Role }): Promise<UserRow | null> {
  const [row] = await db
    .insert(users)
    .values({ id: randomUUID(), email: u.email, passwordHash: u.passwordHash, fullName: u.fullName, role: u.role, tier: "free" })
    .onConflictDoNothing({ target: users.email })
    .returning();
  return row ?? null;
}

export async function deleteUser(db: Db, id: string): Promise<void> {
  await db.delete(users).where(eq(users.id, id));
}

export async function getUser(db: Db, id: string): Promise<UserRow | null> {
  const [row] = await db.select().from(users).where(eq(users.id, id));
  return row ?? null;
}

export async function getUserByEmail(db: Db, email: string): Promise<UserRow | null> {
  const [row] = await db.select().from(users).where(eq(users.email, email));
  return row ?? null;
}

export async function recordLogin(db: Db, id: string): Promise<void> {
  await db.update(users).set({ lastLogin: new Date() }).where(eq(users.id, id));
}

export interface UserPatch {
  role?: Role;
  tier?: Tier;
  disabled?: boolean;
}

/**
 * Applies an admin's change. When the role, tier or disabled state really changes, the user's
 * access tokens issued until now stop counting (`tokensValidAfter`): a refresh gets one that says
 * what is true now. Disabling also revokes their refresh tokens, in the same transaction.
 * `changed` says whether anything changed.
 */
export async function changeUser(db: Db, id: string, patch: UserPatch): Promise<{ user: UserRow; changed: boolean } | null> {
  return db.transaction(async (tx) => {
    // The row lock orders this change after any token being issued from the old row (lockForIssue).
    const [current] = await tx.select().from(users).where(eq(users.id, id)).for("update");
    if (!current) return null;
    const next = {
      role: patch.role ?? current.role,
      tier: patch.tier ?? current.tier,
      disabled: patch.disabled ?? current.disabledAt !== null,
    };
    const changed = next.role !== current.role || next.tier !== current.tier || next.disabled !== (current.disabledAt !== null);
    if (!changed) return { user: current, changed };
    const [user] = await tx
      .update(users)
      .set({
        role: next.role,
        tier: next.tier,
        disabledAt: next.disabled ? (current.disabledAt ?? sql`clock_timestamp()`) : null,
        // The database's clock, like the `iat` of the tokens it is compared with (lockForIssue).
        tokensValidAfter: sql`clock_timestamp()`,
      })
      .where(eq(users.id, id))
      .returning();
    if (next.disabled) await revokeAllForUser(tx, id);
    return { user: user!, changed };
  });
}

/**
 * Reads the user to put in a new access token, share-locked until `issue` returns, with the
 * database's time: a change to the user waits for the token and then makes it stale, never the
 * other way round. `issue` gets the row and the time the token is issued at.
 */
export async function withUserForIssue<T>(db: Db, id: string, issue: (user: UserRow | null, now: Date) => Promise<T>): Promise<T> {
  return db.transaction(async (tx: Tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, id)).for("share");
    const [clock] = await tx.execute<{ now: Date | string }>(sql`select clock_timestamp() as now`);
    return issue(user ?? null, new Date(clock!.now));
  });
}

/** Users whose tokens changed in the last `seconds`: the cutoffs a gateway must still know of. */
export async function listRecentCutoffs(db: Db, seconds: number): Promise<UserRow[]> {
  return db
    .select()
    .from(users)
    .where(gt(users.tokensValidAfter, sql`now() - make_interval(secs => ${seconds})`));
}

export async function listUsers(db: Db, limit: number, offset: number) {
  const [rows, counted] = await Promise.all([
    db.select().from(users).orderBy(desc(users.createdAt), desc(users.id)).limit(limit).offset(offset),
    db.select({ total: sql<number>`count(*)::int` }).from(users),
  ]);
  return { rows, total: counted[0]?.total ?? 0 };
}

/** Totals for the admin dashboard; "today" is the current UTC day. */
export async function countUsers(db: Db) {
  const [row] = await db
    .select({
      total: sql<number>`count(*)::int`,
      today: sql<number>`(count(*) filter (where ${users.createdAt} >= date_trunc('day', now() at time zone 'utc') at time zone 'utc'))::int`,
    })
    .from(users);
  return { total: row?.total ?? 0, today: row?.today ?? 0 };
}
