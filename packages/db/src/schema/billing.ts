import { sql } from "drizzle-orm";
import { integer, index, pgSchema, primaryKey, text, timestamp, uniqueIndex, uuid, numeric } from "drizzle-orm/pg-core";

export const billing = pgSchema("billing");

/** One row per user: the running balance, kept in step with the ledger in the same transaction. */
export const accounts = billing.table("accounts", {
  userId: uuid("user_id").primaryKey(),
  available: integer("available").notNull().default(0),
  reserved: integer("reserved").notNull().default(0),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Append-only: rows are inserted, never updated or deleted. */
export const ledger = billing.table(
  "ledger",
  {
    id: uuid("id").primaryKey(),
    userId: uuid("user_id").notNull().references(() => accounts.userId),
    kind: text("kind", { enum: ["grant", "purchase", "reserve", "capture", "release"] }).notNull(),
    amount: integer("amount").notNull(),
    jobId: uuid("job_id"),
    note: text("note"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index("ledger_user_idx").on(t.userId, t.createdAt),
    // At most one reserve, and one settlement (capture or release), per job.
    uniqueIndex("ledger_job_reserve_uq").on(t.jobId).where(sql`kind = 'reserve'`),
    uniqueIndex("ledger_job_settle_uq").on(t.jobId).where(sql`kind in ('capture', 'release')`),
    // The orphan sweep reads only the last day's reservations (ADR 019), not the whole ledger.
    index("ledger_reserve_created_idx").on(t.createdAt).where(sql`kind = 'reserve'`),
  ],
);

export const purchases = billing.table("purchases", {
  id: uuid("id").primaryKey(),
  userId: uuid("user_id").notNull().references(() => accounts.userId),
  package: text("package").notNull(),
  credits: integer("credits").notNull(),
  amount: numeric("amount", { precision: 10, scale: 2 }).notNull(),
  currency: text("currency").notNull(),
  provider: text("provider").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Fixed-window counters shared by every gateway replica. */
export const rateWindows = billing.table(
  "rate_windows",
  {
    userId: uuid("user_id").notNull(),
    bucket: text("bucket").notNull(),
    windowStart: timestamp("window_start", { withTimezone: true }).notNull(),
    count: integer("count").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.userId, t.bucket, t.windowStart] })],
);
