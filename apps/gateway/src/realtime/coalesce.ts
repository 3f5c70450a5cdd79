type Waiter<T> = { resolve: (value: T) => void; reject: (err: unknown) => void };

/**
 * Shares reads between callers asking for the same key at once: at most one read per key runs; who
 * asks while it runs waits for the next one, which starts when it ends and serves all of them. So
 * every caller gets a result read after it asked (a watcher that listened first misses nothing
 * between the read and its live events), and a thousand clients opening one job cost a few reads
 * rather than a thousand (docs/adr/029).
 */
export function createCoalescer() {
  const pending = new Map<string, { read: () => Promise<unknown>; waiters: Waiter<unknown>[] }>();
  const running = new Set<string>();

  const run = (key: string, read: () => Promise<unknown>, waiters: Waiter<unknown>[]) => {
    running.add(key);
    const settle = (each: (w: Waiter<unknown>) => void) => {
      for (const w of waiters) each(w);
      const next = pending.get(key);
      pending.delete(key);
      if (next) run(key, next.read, next.waiters);
      else running.delete(key);
    };
    Promise.resolve().then(read).then(
      (value) => settle((w) => w.resolve(value)),
      (err: unknown) => settle((w) => w.reject(err)),
    );
  };

  return <T>(key: string, read: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const waiter = { resolve, reject } as Waiter<unknown>;
      if (!running.has(key)) return run(key, read, [waiter]);
      const next = pending.get(key);
      if (next) next.waiters.push(waiter);
      else pending.set(key, { read, waiters: [waiter] });
    });
}
export type Coalesce = ReturnType<typeof createCoalescer>;
