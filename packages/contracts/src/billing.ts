import { z } from "zod";
import { Pagination, Tier, Timestamp, Uuid } from "./common.ts";

export const LedgerKind = z.enum(["grant", "purchase", "reserve", "capture", "release"]);
export type LedgerKind = z.infer<typeof LedgerKind>;

/** A user's storage against their tier's quota (ADR 031). */
export const StorageUsage = z.object({
  used_bytes: z.number().int().describe("bytes of the user's files, and of uploads under way by their declared size"),
  quota_bytes: z.number().int().describe("the tier's quota; an upload that would pass it is refused with 413 STORAGE_QUOTA_EXCEEDED"),
});
export type StorageUsage = z.infer<typeof StorageUsage>;

export const Credits = z.object({
  credits: z.number().int().describe("available to spend now"),
  reserved: z.number().int().describe("held by queued or running jobs"),
  tier: Tier,
  limits: z.object({
    jobs_per_minute: z.number().int(),
    concurrent_jobs: z.number().int(),
    max_file_bytes: z.number().int(),
  }),
  storage: StorageUsage,
});

export const LedgerEntry = z.object({
  id: Uuid,
  kind: LedgerKind,
  amount: z.number().int().describe("signed change to the available balance"),
  job_id: Uuid.nullable(),
  note: z.string().nullable(),
  created_at: Timestamp,
});
export type LedgerEntry = z.infer<typeof LedgerEntry>;

export const ListLedgerQuery = Pagination;

export const RateDecision = z.object({
  allowed: z.boolean(),
  limit: z.number().int(),
  remaining: z.number().int(),
  reset: z.number().int().describe("unix seconds when the window resets"),
});
export type RateDecision = z.infer<typeof RateDecision>;

export const CreditPackage = z.enum(["credits_100", "pro_1000", "studio_5000"]);
export const creditPackages: Record<z.infer<typeof CreditPackage>, { credits: number; amount: number; currency: "USD" }> = {
  credits_100: { credits: 100, amount: 9.99, currency: "USD" },
  pro_1000: { credits: 1000, amount: 99.99, currency: "USD" },
  studio_5000: { credits: 5000, amount: 449.99, currency: "USD" },
};
export const PurchaseBody = z.object({ package: CreditPackage, payment_method: z.enum(["test"]).default("test") });
export const PurchaseReply = z.object({
  transaction_id: Uuid,
  credits_added: z.number().int(),
  new_balance: z.number().int(),
  amount_paid: z.number(),
  currency: z.string(),
});
export const AdminGrantBody = z.object({ amount: z.number().int().positive().max(1_000_000), note: z.string().max(200).optional() });
