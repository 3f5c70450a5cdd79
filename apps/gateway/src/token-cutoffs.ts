import { AppError, TokenCutoff, tokenCutoffsBucket } from "@cutroom/contracts";
import type { Logger, NatsConnection } from "@cutroom/runtime";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";

interface Cutoff {
  /** Tokens whose `iat` (unix seconds) is this or less no longer count. */
  notAfter: number;
  disabled: boolean;
}

export interface TokenCutoffWatch {
  /** Resolves once the bucket's current values are in memory. */
  ready: Promise<void>;
  /** Throws when the token of `userId` issued at `iat` no longer counts: its user changed or was disabled. */
  check: (userId: string, iat: number) => void;
  /** Reads one user's entry now, rather than when the watch delivers it (right after an admin's change). */
  sync: (userId: string) => Promise<void>;
  stop: () => Promise<void>;
}

const isMissingBucket = (err: unknown) => /stream not found|bucket not found/i.test((err as Error)?.message ?? "");

/**
 * auth-service's token cutoffs (docs/adr/015), watched from its NATS KV bucket into a map,
 * so each request pays one lookup. Until the bucket's values are loaded, `check` answers 503 rather
 * than let a revoked token through; the bucket is auth-service's to create, and is waited for.
 */
export function watchTokenCutoffs(nc: NatsConnection, log: Logger, opts: { retryMs?: number } = {}): TokenCutoffWatch {
  const cutoffs = new Map<string, Cutoff>();
  let kv: KV | undefined;
  let loaded = false;
  let stopped = false;
  let stopWatch: (() => void) | undefined;
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const setLoaded = () => {
    if (!loaded) log.info({ users: cutoffs.size }, "token cutoffs loaded");
    loaded = true;
    markReady();
  };

  const apply = (e: KvEntry) => {
    if (e.operation !== "PUT") return void cutoffs.delete(e.key);
    const parsed = TokenCutoff.safeParse(e.json());
    if (!parsed.success) return log.error({ user_id: e.key }, "malformed token cutoff ignored");
    cutoffs.set(e.key, { notAfter: Math.floor(Date.parse(parsed.data.tokens_valid_after) / 1000), disabled: parsed.data.disabled });
  };

  const run = async () => {
    let waitingSaid = false;
    while (!stopped) {
      try {
        kv = await new Kvm(nc).open(tokenCutoffsBucket);
        // The watch first replays each user's latest value; the last of them is this sequence or later.
        const last = (await kv.status()).streamInfo.state.last_seq;
        const watch = await kv.watch();
        stopWatch = () => watch.stop();
        if (last === 0) setLoaded();
        for await (const e of watch) {
          apply(e);
          if (e.revision >= last) setLoaded();
        }
      } catch (err) {
        if (stopped) return;
        if (!isMissingBucket(err)) log.warn({ err }, "token cutoffs watch failed; retrying");
        else if (!waitingSaid) log.info("waiting for auth-service to create the token-cutoffs bucket");
        waitingSaid = true;
      }
      if (!stopped) await new Promise((r) => setTimeout(r, opts.retryMs ?? 500));
    }
  };
  void run();

  return {
    ready,
    check(userId, iat) {
      if (!loaded) throw new AppError("SERVICE_UNAVAILABLE", "sign-in state is not loaded yet; try again in a moment", { service: "auth" });
      const cutoff = cutoffs.get(userId);
      if (!cutoff) return;
      if (cutoff.disabled) throw new AppError("ACCOUNT_DISABLED", "this account is disabled");
      if (iat <= cutoff.notAfter) throw new AppError("UNAUTHORIZED", "token revoked, sign in again");
    },
    async sync(userId) {
      const e = await kv?.get(userId);
      if (e) apply(e);
    },
    async stop() {
      stopped = true;
      stopWatch?.();
    },
  };
}
