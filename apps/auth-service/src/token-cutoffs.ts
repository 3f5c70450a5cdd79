import { tokenCutoffsBucket, type TokenCutoff } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import type { Logger, NatsConnection } from "@cutroom/runtime";
import { Kvm } from "@nats-io/kv";
import { listRecentCutoffs, type UserRow } from "./users.ts";

/** Where auth-service tells every gateway which access tokens of a user no longer count. */
export interface TokenCutoffs {
  publish: (userId: string, cutoff: TokenCutoff) => Promise<void>;
}

/**
 * Opens the KV bucket gateways watch, creating it on first start; only each user's latest value is kept.
 * Replicas count only when it is created (nats.js leaves an existing bucket's config alone), as for the streams.
 */
export async function openTokenCutoffs(nc: NatsConnection, opts: { replicas?: number } = {}): Promise<TokenCutoffs> {
  const kv = await new Kvm(nc).create(tokenCutoffsBucket, { history: 1, replicas: opts.replicas ?? 1 });
  return {
    publish: async (userId, cutoff) => {
      await kv.put(userId, JSON.stringify(cutoff));
    },
  };
}

/** The user's entry, or null while nothing was ever changed for them (every token of theirs counts). */
export function cutoffOf(user: UserRow): TokenCutoff | null {
  if (!user.tokensValidAfter) return null;
  return { tokens_valid_after: user.tokensValidAfter.toISOString(), disabled: user.disabledAt !== null };
}

/**
 * At start, publishes again every change younger than an access token's lifetime: the database is
 * the truth, and a NATS whose store was lost must not let a revoked token back in. Older changes no
 * longer matter, since every token issued before them has expired.
 */
export async function republishRecentCutoffs(db: Db, cutoffs: TokenCutoffs, accessTokenTtlSeconds: number, log: Logger): Promise<void> {
  const users = await listRecentCutoffs(db, accessTokenTtlSeconds + 60);
  for (const user of users) await cutoffs.publish(user.id, cutoffOf(user)!);
  if (users.length > 0) log.info({ users: users.length }, "token cutoffs published again");
}
