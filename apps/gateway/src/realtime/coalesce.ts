type Waiter<T> = { resolve: (value: T) => void; reject: (err: unknown) => void };

/** A read of a key with a version: its answer serves whoever asks while the version stays the same. */
interface Shared {
  version: number;
  answer: Promise<unknown>;
  /** When it ended (epoch ms); undefined while it runs. */
  endedAt?: number;
}

/**
 * How a key's answer can go stale without a reader noticing: a number that changes whenever
 * something happened that the answer might not show (for a job: an event the hub dispatched to its
 * watchers, docs/adr/035).
 */
export type Version = () => number;

// How long an answer stays shareable after its read ended, while its version holds: it bounds how
// old a snapshot can be for row changes that no event carries.
const SHARE_FOR_MS = 1_000;
// Ended answers are swept this often, so keys of jobs nobody opens again do not stay.
const SWEEP_EVERY_MS = 10_000;

/**
 * Shares reads between callers asking for the same key (docs/adr/029, 035).
 *
 * Without a version: at most one read per key runs; who asks while it runs waits for the next one,
 * which starts when it ends and serves all of them. So every caller gets a result read after it
 * asked (a watcher that listened first misses nothing between the read and its live events).
 *
 * With a version (taken when a read starts): a caller whose version is still the same shares that
 * read, under way or ended less than a second ago, since nothing it could miss happened after the
 * read began. A thousand clients opening one job then cost one read, not a hundred.
 */
export function createCoalescer(opts: { now?: () => number } = {}) {
  const now = opts.now ?? Date.now;
  const pending = new Map<string, { read: () => Promise<unknown>; version?: Version; waiters: Waiter<unknown>[] }>();
  const running = new Set<string>();
  const shared = new Map<string, Shared>();
  let sweeper: NodeJS.Timeout | undefined;

  const sweep = () => {
    const oldest = now() - SHARE_FOR_MS;
    for (const [key, s] of shared) if (s.endedAt !== undefined && s.endedAt <= oldest) shared.delete(key);
    if (shared.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };

  const run = (key: string, read: () => Promise<unknown>, version: Version | undefined, waiters: Waiter<unknown>[]) => {
    running.add(key);
    const answer = Promise.resolve().then(read);
    const entry: Shared | undefined = version ? { version: version(), answer } : undefined;
    if (entry) {
      shared.set(key, entry);
      sweeper ??= setInterval(sweep, SWEEP_EVERY_MS).unref();
    }
    const settle = (each: (w: Waiter<unknown>) => void) => {
      for (const w of waiters) each(w);
      const next = pending.get(key);
      pending.delete(key);
      if (next) run(key, next.read, next.version, next.waiters);
      else running.delete(key);
    };
    answer.then(
      (value) => {
        if (entry) entry.endedAt = now();
        settle((w) => w.resolve(value));
      },
      (err: unknown) => {
        // A failure is not shared with those who ask later: they read again.
        if (shared.get(key) === entry) shared.delete(key);
        settle((w) => w.reject(err));
      },
    );
  };

  return <T>(key: string, read: () => Promise<T>, version?: Version): Promise<T> => {
    const s = version && shared.get(key);
    if (s && s.version === version() && (s.endedAt === undefined || now() - s.endedAt < SHARE_FOR_MS)) return s.answer as Promise<T>;
    return new Promise<T>((resolve, reject) => {
      const waiter = { resolve, reject } as Waiter<unknown>;
      if (!running.has(key)) return run(key, read, version, [waiter]);
      const next = pending.get(key);
      if (next) next.waiters.push(waiter);
      else pending.set(key, { read, version, waiters: [waiter] });
    });
  };
}
export type Coalesce = ReturnType<typeof createCoalescer>;
