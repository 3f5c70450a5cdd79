import { AppError, creditPackages, rateBuckets, tierLimits, toPage } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import { runChecks, type RpcHandlers } from "@cutroom/runtime";
import { sqlTag as sql } from "@cutroom/db";
import { reserve, settle } from "@cutroom/ledger";
import { getAccount, grant, listLedger, openAccount, recordPurchase } from "./ledger.ts";
import { consumeRate, throttleKey } from "./rate-limit.ts";

export interface BillingDeps {
  db: Db;
  /** Whether the offline `test` provider may add credits without payment (BILLING_TEST_PURCHASES). */
  testPurchases?: boolean;
}

/** billing-service: the credit ledger, tiers and their limits, purchases, rate windows. */
export function createBillingHandlers({ db, testPurchases = false }: BillingDeps): RpcHandlers<"billing"> {
  return {
    health: async () => {
      const health = await runChecks("billing", { database: () => db.execute(sql`select 1`) });
      // Free credits for anyone who asks: an operator must see it on /health, not find out from the ledger.
      if (testPurchases) health.checks.test_purchases = { status: "up" };
      return health;
    },

    openAccount: async ({ user_id, credits }) => openAccount(db, user_id, credits),

    balance: async ({ user_id, tier }) => {
      const acct = await getAccount(db, user_id);
      const limits = tierLimits[tier];
      return {
        credits: acct.available,
        reserved: acct.reserved,
        tier,
        limits: { jobs_per_minute: limits.jobsPerMinute, concurrent_jobs: limits.concurrentJobs, max_file_bytes: limits.maxFileBytes },
      };
    },

    ledger: async ({ user_id, limit, offset }) => {
      const { rows, total } = await listLedger(db, user_id, limit, offset);
      const data = rows.map((r) => ({ id: r.id, kind: r.kind, amount: r.amount, job_id: r.jobId, note: r.note, created_at: r.createdAt.toISOString() }));
      return toPage(data, total, { limit, offset });
    },

    // job-service reserves in its own job-creating transaction; this call stays for other callers.
    reserve: async ({ user_id, job_id, amount }) => db.transaction((tx) => reserve(tx, user_id, job_id, amount)),
    capture: async ({ job_id }) => ({ state: (await db.transaction((tx) => settle(tx, job_id, "capture"))).state }),
    release: async ({ job_id }) => db.transaction((tx) => settle(tx, job_id, "release")),

    rate: async ({ user_id, tier, bucket }) => {
      const limitOf = Object.hasOwn(rateBuckets, bucket) ? rateBuckets[bucket as keyof typeof rateBuckets] : undefined;
      if (!limitOf) throw new AppError("INVALID_INPUT", `unknown rate bucket ${bucket}`);
      return consumeRate(db, { key: user_id, bucket, limit: limitOf(tierLimits[tier]) });
    },

    throttle: async ({ bucket, key, limit, window_seconds, cost }) =>
      consumeRate(db, { key: throttleKey(key), bucket, limit, windowMs: window_seconds * 1000, cost }),

    // The offline `test` provider: payment always succeeds. Stripe would sit behind the same call.
    purchase: async ({ user_id, package: pkg, payment_method }) => {
      if (payment_method !== "test") throw new AppError("INVALID_INPUT", `unknown payment method ${payment_method}`, { payment_method });
      if (!testPurchases) {
        throw new AppError("FORBIDDEN", "purchases with the offline test provider are turned off on this server (BILLING_TEST_PURCHASES)", {
          payment_method,
        });
      }
      const offer = creditPackages[pkg];
      const { id, available } = await recordPurchase(db, { userId: user_id, package: pkg, credits: offer.credits, amount: offer.amount, currency: offer.currency, provider: payment_method });
      return { transaction_id: id, credits_added: offer.credits, new_balance: available, amount_paid: offer.amount, currency: offer.currency };
    },

    grant: async ({ user_id, amount, note }) => grant(db, user_id, "grant", amount, note ?? "granted by an admin"),
  };
}
