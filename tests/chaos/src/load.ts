import { randomUUID } from "node:crypto";
import { isTerminalEvent, type JobEvent } from "@cutroom/contracts";
import WebSocket from "ws";

/** Something a client saw go wrong: an answer it had to retry, or a live stream that broke. */
export interface ClientError {
  at: number;
  where: "post" | "watch";
  what: string;
}

/** One job as its client lived it: the POST (with retries under one Idempotency-Key), then its live events. */
export interface JobRecord {
  n: number;
  key: string;
  type: string;
  /** Milliseconds since the load started. */
  firstTryAt: number;
  acceptedAt?: number;
  id?: string;
  posts: number;
  /** The POST ended without a 202 (a 4xx, or it gave up retrying). */
  refused?: string;
  events: Pick<JobEvent, "seq" | "type">[];
  terminalAt?: number;
  status?: string;
  reconnects: number;
  errors: ClientError[];
}

export interface LoadOptions {
  /** Gateways' base URLs: a client tries the next one when one does not answer, as behind a load balancer. */
  gateways: string[];
  token: string;
  /** Job requests to cycle through. */
  jobs: { type: string; input: Record<string, unknown> }[];
  perSecond: number;
  /** How long a client keeps retrying one POST before it gives up. */
  retryForMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Steady open-loop load: `perSecond` new jobs, each POSTed with an Idempotency-Key (retried with the
 * same key on a 5xx or a refused connection, to the next gateway) and then followed live over
 * `WS /ws/jobs/{id}`, reconnecting with `since` when the stream breaks, until its terminal event.
 */
export function startLoad(opts: LoadOptions) {
  const started = Date.now();
  const now = () => Date.now() - started;
  const jobs: JobRecord[] = [];
  const running = new Set<Promise<void>>();
  let stopped = false;
  const retryForMs = opts.retryForMs ?? 60_000;
  const gateway = (i: number) => opts.gateways[i % opts.gateways.length]!;

  const submit = async (rec: JobRecord, body: string) => {
    for (let attempt = 0; ; attempt++) {
      rec.posts++;
      try {
        const res = await fetch(`${gateway(rec.n + attempt)}/api/v1/jobs`, {
          method: "POST",
          headers: { authorization: `Bearer ${opts.token}`, "content-type": "application/json", "idempotency-key": rec.key },
          body,
          signal: AbortSignal.timeout(15_000),
        });
        const reply = (await res.json().catch(() => null)) as { id?: string; error?: { code?: string } } | null;
        if (res.status === 202 && reply?.id) {
          rec.id = reply.id;
          rec.acceptedAt = now();
          return;
        }
        rec.errors.push({ at: now(), where: "post", what: `${res.status} ${reply?.error?.code ?? ""}`.trim() });
        // A 4xx other than 429 is an answer, not an outage: retrying would not change it.
        if (res.status < 500 && res.status !== 429) {
          rec.refused = `${res.status} ${reply?.error?.code ?? ""}`.trim();
          return;
        }
      } catch (err) {
        rec.errors.push({ at: now(), where: "post", what: describe(err) });
      }
      if (now() - rec.firstTryAt > retryForMs) {
        rec.refused = "gave up retrying";
        return;
      }
      await sleep(Math.min(2000, 100 * 2 ** attempt));
    }
  };

  /** One WebSocket session from `since`; resolves when it closes, whatever the reason. */
  const watchOnce = (rec: JobRecord, since: number) =>
    new Promise<void>((resolve) => {
      const url = new URL(`/ws/jobs/${rec.id}`, gateway(rec.n + rec.reconnects).replace(/^http/, "ws"));
      url.searchParams.set("since", String(since));
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${opts.token}` } });
      // A stream silent for 10 s is dead to the client: it reconnects with `since`, as docs/RELIABILITY.md advises.
      let idle = setTimeout(() => ws.terminate(), 10_000);
      ws.on("message", (data) => {
        clearTimeout(idle);
        idle = setTimeout(() => ws.terminate(), 10_000);
        const m = JSON.parse(data.toString());
        if (typeof m.seq !== "number") return;
        rec.events.push({ seq: m.seq, type: m.type });
        if (isTerminalEvent(m)) {
          rec.terminalAt = now();
          rec.status = m.status;
        }
      });
      ws.on("close", (code, reason) => {
        clearTimeout(idle);
        if (rec.terminalAt === undefined) rec.errors.push({ at: now(), where: "watch", what: `closed ${code} ${reason.toString()}`.trim() });
        resolve();
      });
      ws.on("error", (err) => rec.errors.push({ at: now(), where: "watch", what: describe(err) }));
    });

  const follow = async (rec: JobRecord, deadline: () => number) => {
    while (rec.terminalAt === undefined && now() < deadline()) {
      await watchOnce(rec, rec.events.at(-1)?.seq ?? 0);
      if (rec.terminalAt !== undefined) return;
      rec.reconnects++;
      await sleep(250);
    }
  };

  let drainDeadline = Number.POSITIVE_INFINITY;
  const one = async (n: number) => {
    const request = opts.jobs[n % opts.jobs.length]!;
    const rec: JobRecord = { n, key: randomUUID(), type: request.type, firstTryAt: now(), posts: 0, events: [], reconnects: 0, errors: [] };
    jobs.push(rec);
    await submit(rec, JSON.stringify(request));
    if (rec.id) await follow(rec, () => drainDeadline);
  };

  const loop = (async () => {
    for (let n = 0; !stopped; n++) {
      // Open loop: the next job is due at its time whatever the earlier ones are doing.
      const due = (n * 1000) / opts.perSecond;
      if (due > now()) await sleep(due - now());
      if (stopped) break;
      const p = one(n);
      running.add(p);
      void p.finally(() => running.delete(p));
    }
  })();

  return {
    jobs,
    now,
    /** Stops making jobs; waits up to `forMs` for every accepted one to end. */
    async drain(forMs: number) {
      stopped = true;
      await loop;
      drainDeadline = now() + forMs;
      await Promise.all([...running]);
    },
  };
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string } };
  return e.cause?.code ?? (e.name === "TimeoutError" ? "timeout" : (e.message ?? String(err)));
}
