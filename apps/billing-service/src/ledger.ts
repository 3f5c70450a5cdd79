import { randomUUID } from "node:crypto";
import { AppError, type LedgerKind } from "@cutroom/contracts";
import { and, desc, eq, inArray, sqlTag as sql, type Db } from "@cutroom/db";
import { accounts, ledger, purchases } from "@cutroom/db/billing";

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** Locks the user's account row for the rest of the transaction: credit moves per user are serial. */
async function lockAccount(tx: Tx, userId: string) {
  const [acct] = await tx.select().from(accounts).where(eq(accounts.userId, userId)).for("update");
  if (!acct) throw new AppError("NOT_FOUND", "no credit account for this user");
  return acct;
}

async function append(tx: Tx, userId: string, kind: LedgerKind, amount: number, jobId: string | null, note: string | null) {
  await tx.insert(ledger).values({ id: randomUUID(), userId, kind, amount, jobId, note });
}

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

/** Holds `amount` for a job. Idempotent per job: a second reserve for the same job is a no-op. */
export async function reserve(db: Db, userId: string, jobId: string, amount: number) {
  return db.transaction(async (tx) => {
    const acct = await lockAccount(tx, userId);
    const [existing] = await tx.select({ id: ledger.id }).from(ledger).where(and(eq(ledger.jobId, jobId), eq(ledger.kind, "reserve")));
    if (existing) return { balance: acct.available };
    if (acct.available < amount) {
      throw new AppError("INSUFFICIENT_CREDITS", `this job needs ${amount} credits; ${acct.available} available`, {
        required: amount,
        available: acct.available,
      });
    }
    await append(tx, userId, "reserve", -amount, jobId, null);
    const available = acct.available - amount;
    await tx.update(accounts).set({ available, reserved: acct.reserved + amount, updatedAt: new Date() }).where(eq(accounts.userId, userId));
    return { balance: available };
  });
}

/**
 * Settles a job's reservation exactly once: capture keeps the credits, release gives them back.
 * Whichever comes first wins; later calls report the state it left.
 */
export async function settle(db: Db, jobId: string, outcome: "capture" | "release") {
  return db.transaction(async (tx) => {
    const [held] = await tx.select().from(ledger).where(and(eq(ledger.jobId, jobId), eq(ledger.kind, "reserve")));
    if (!held) return { state: "none" as const, refunded: 0 };
    const acct = await lockAccount(tx, held.userId);
    const [done] = await tx
      .select({ kind: ledger.kind })
      .from(ledger)
      .where(and(eq(ledger.jobId, jobId), inArray(ledger.kind, ["capture", "release"])));
    if (done) return { state: stateOf(done.kind), refunded: 0 };
    const amount = -held.amount;
    const refund = outcome === "release" ? amount : 0;
    await append(tx, held.userId, outcome, refund, jobId, outcome === "capture" ? `captured ${amount}` : null);
    await tx
      .update(accounts)
      .set({ available: acct.available + refund, reserved: acct.reserved - amount, updatedAt: new Date() })
      .where(eq(accounts.userId, held.userId));
    return { state: stateOf(outcome), refunded: refund };
  });
}

const stateOf = (kind: string) => (kind === "capture" ? ("captured" as const) : ("released" as const));

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
