import { randomUUID } from "node:crypto";
import { AppError } from "@cutroom/contracts";
import { desc, eq, sqlTag as sql, type Db } from "@cutroom/db";
import { accounts, ledger, purchases } from "@cutroom/db/billing";
import { append, lockAccount } from "@cutroom/ledger";

// Reserve and settle live in @cutroom/ledger: job-service reserves inside its own job-creating transaction (ADR 019).

/** Opens the account with its sign-up grant; opening it again changes nothing. */
export async function openAccount(db: Db, userId: string, credits: number) {
  return db.transaction(async (tx) => {
    const inserted = await tx.insert(accounts).values({ userId, available: credits }).onConflictDoNothing().returning();
    if (inserted.length > 0 && credits > 0) await append(tx, userId, "grant", credits, null, "sign-up credits");
    const acct = await lockAccount(tx, userId);
    return { credits: acct.available };
  });
}

export async function getAccount(db: Db, userId: string) {
  const [acct] = await db.select().from(accounts).where(eq(accounts.userId, userId));
  if (!acct) throw new AppError("NOT_FOUND", "no credit account for this user");
  return acct;
}

export async function grant(db: Db, userId: string, kind: "grant" | "purchase", amount: number, note: string | null) {
  return db.transaction(async (tx) => {
    const acct = await lockAccount(tx, userId);
    await append(tx, userId, kind, amount, null, note);
    const available = acct.available + amount;
    await tx.update(accounts).set({ available, updatedAt: new Date() }).where(eq(accounts.userId, userId));
    return { credits: available };
  });
}

export async function listLedger(db: Db, userId: string, limit: number, offset: number) {
  const [rows, counted] = await Promise.all([
    db.select().from(ledger).where(eq(ledger.userId, userId)).orderBy(desc(ledger.createdAt), desc(ledger.id)).limit(limit).offset(offset),
    db.select({ total: sql<number>`count(*)::int` }).from(ledger).where(eq(ledger.userId, userId)),
  ]);
  return { rows, total: counted[0]?.total ?? 0 };
}

export async function recordPurchase(db: Db, p: { userId: string; package: string; credits: number; amount: number; currency: string; provider: string }) {
  return db.transaction(async (tx) => {
    const acct = await lockAccount(tx, p.userId);
    const id = randomUUID();
    await tx.insert(purchases).values({ id, userId: p.userId, package: p.package, credits: p.credits, amount: p.amount.toFixed(2), currency: p.currency, provider: p.provider });
    await append(tx, p.userId, "purchase", p.credits, null, `purchase ${id}`);
    const available = acct.available + p.credits;
    await tx.update(accounts).set({ available, updatedAt: new Date() }).where(eq(accounts.userId, p.userId));
    return { id, available };
  });
}
