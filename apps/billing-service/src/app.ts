import { AppError, creditPackages, tierLimits, toPage } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import { runChecks, type RpcHandlers } from "@cutroom/runtime";
import { sqlTag as sql } from "@cutroom/db";
import { getAccount, grant, listLedger, openAccount, recordPurchase, reserve, settle } from "./ledger.ts";
import { consumeRate } from "./rate-limit.ts";

export interface BillingDeps {
  db: Db;
}

/** billing-service: the credit ledger, tiers and their limits, purchases, rate windows. */
export function createBillingHandlers({ db }: BillingDeps): RpcHandlers<"billing"> {
  return {
    health: async () => runChecks("billing", { database: () => db.execute(sql`select 1`) }),

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

    reserve: async ({ user_id, job_id, amount }) => reserve(db, user_id, job_id, amount),
    capture: async ({ job_id }) => ({ state: (await settle(db, job_id, "capture")).state }),
    release: async ({ job_id }) => settle(db, job_id, "release"),

    rate: async ({ user_id, tier, bucket }) => {
      if (bucket !== "jobs.create") throw new AppError("INVALID_INPUT", `unknown rate bucket ${bucket}`);
      return consumeRate(db, user_id, bucket, tierLimits[tier].jobsPerMinute);
    },

    // The offline `test` provider: payment always succeeds. Stripe would sit behind the same call.
    purchase: async ({ user_id, package: pkg, payment_method }) => {
      const offer = creditPackages[pkg];
      const { id, available } = await recordPurchase(db, { userId: user_id, package: pkg, credits: offer.credits, amount: offer.amount, currency: offer.currency, provider: payment_method });
      return { transaction_id: id, credits_added: offer.credits, new_balance: available, amount_paid: offer.amount, currency: offer.currency };
    },

    grant: async ({ user_id, amount, note }) => grant(db, user_id, "grant", amount, note ?? "granted by an admin"),
  };
}
