import { randomUUID } from "node:crypto";
import type { Role, Tier } from "@cutroom/contracts";
import { desc, eq, sqlTag as sql, type Db } from "@cutroom/db";
import { users } from "@cutroom/db/auth";

export type UserRow = typeof users.$inferSelect;

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

export async function updateUser(db: Db, id: string, patch: { role?: Role; tier?: Tier }): Promise<UserRow | null> {
  if (patch.role === undefined && patch.tier === undefined) return getUser(db, id);
  const [row] = await db.update(users).set(patch).where(eq(users.id, id)).returning();
  return row ?? null;
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
