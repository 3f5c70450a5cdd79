/**
 * Coalesces concurrent reads: while one `read` is in flight, the asks arriving queue, and the next
 * `read` answers them all. One query serves many requests, so its cost per request falls as load
 * rises, and a lone ask goes at once. `read` answers each ask, in the order given.
 */
export function coalesce<A, R>(read: (asks: A[]) => Promise<R[]>): (ask: A) => Promise<R> {
  let queue: { ask: A; resolve: (r: R) => void; reject: (err: unknown) => void }[] = [];
  let busy = false;
  const drain = async () => {
    busy = true;
    while (queue.length > 0) {
      const waiting = queue;
      queue = [];
      try {
        const answers = await read(waiting.map((w) => w.ask));
        for (const [i, w] of waiting.entries()) w.resolve(answers[i]!);
      } catch (err) {
        for (const w of waiting) w.reject(err);
      }
    }
    busy = false;
  };
  return (ask) =>
    new Promise((resolve, reject) => {
      queue.push({ ask, resolve, reject });
      if (!busy) void drain();
    });
}
