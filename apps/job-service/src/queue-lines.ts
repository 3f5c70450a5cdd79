import { tierLimits } from "@cutroom/contracts";
import { executePrepared, sqlTag as sql, type Db } from "@cutroom/db";
import type { JobEventPublisher, Logger } from "@cutroom/runtime";
import { queuePositions, type Conn, type JobRow, type QueuePlace } from "./job-store.ts";

/** How many recent successful runs of a type its eta is the median of. */
const RUNS_FOR_ETA = 20;
/** How long a type's median run time is reused before it is read again. */
const RUN_TIME_TTL_MS = 10_000;
/** The most places of one worker queue told per pass: deeper jobs learn theirs from GET. */
const TOLD_PER_QUEUE = 1000;

/**
 * The lines a queued job waits in and its place in them (ADR 037): a held job among its owner's
 * waiting jobs (ADR 031), a dispatched one among the unclaimed jobs dispatched to its worker queue
 * before it. Each with an eta from the median run time of its type's recent successful runs.
 *
 * A worker queue's places are told as they change, coalesced: a queue a claim (or a dispatch) touched
 * is read once per `intervalMs`, and a job hears its place only after it has waited that long, only
 * when it has moved to a smaller `placeBucket` than last told (each place up to 3, then powers of two),
 * so a backlog of n costs each job O(log n) events, not one per dequeue.
 */
export function createQueueLines(deps: { db: Db; events: JobEventPublisher; log: Logger; intervalMs: number }) {
  const runTimes = new Map<string, { seconds: number | null; at: number }>();

  /** Each type's median run time in seconds (null: none succeeded yet), cached briefly. */
  const medianRunSeconds = async (types: readonly string[]): Promise<Map<string, number | null>> => {
    const now = Date.now();
    // A type with no run yet is read again each time: its first success should show at once.
    const stale = [...new Set(types)].filter((t) => (runTimes.get(t)?.seconds == null ? 0 : runTimes.get(t)!.at) < now - RUN_TIME_TTL_MS);
    if (stale.length > 0) {
      const rows = await executePrepared<{ type: string; median: number | null }>(deps.db, sql`
        select t.type, percentile_cont(0.5) within group (order by r.secs) as median
        from unnest(${sql.param(stale)}::text[]) as t(type)
        left join lateral (
          select extract(epoch from j.completed_at - j.started_at)::float8 as secs from jobs.jobs j
          where j.type = t.type and j.status = 'succeeded' and j.started_at is not null
          order by j.completed_at desc limit ${RUNS_FOR_ETA}
        ) r on true
        group by t.type`);
      const found = new Map([...rows].map((r) => [r.type, r.median == null ? null : Number(r.median)]));
      for (const t of stale) runTimes.set(t, { seconds: found.get(t) ?? null, at: now });
    }
    return new Map(types.map((t) => [t, runTimes.get(t)?.seconds ?? null]));
  };

  /** The places (and etas) of the queued rows among `rows`, by id; a row in no line is left out. */
  const places = async (rows: readonly JobRow[]): Promise<Map<string, QueuePlace>> => {
    const queued = rows.filter((r) => r.status === "queued");
    if (queued.length === 0) return new Map();
    const dispatched = queued.filter((r) => !r.held && r.dispatchedAt != null);
    const [held, inQueues, medians] = await Promise.all([
      queuePositions(deps.db, queued),
      workerQueuePlaces(deps.db, dispatched),
      medianRunSeconds(queued.map((r) => r.type)),
    ]);
    const out = new Map<string, QueuePlace>();
    for (const row of queued) {
      const median = medians.get(row.type) ?? null;
      const heldAt = held.get(row.id);
      if (heldAt !== undefined) {
        // Its turn among its owner's slots, then its own run; the worker queue's wait is not counted.
        const slots = tierLimits[row.tier ?? "enterprise"].concurrentJobs;
        out.set(row.id, { position: heldAt, eta: etaOf(median, Math.ceil(heldAt / slots)) });
        continue;
      }
      const inQueue = inQueues.get(row.id);
      if (inQueue) out.set(row.id, { position: inQueue.position, eta: etaOf(median, Math.floor((inQueue.position - 1) / inQueue.workers)) });
    }
    return out;
  };

  // Worker queues a claim or dispatch changed since the last pass, and each queue's places told, by job id.
  const touched = new Set<string>();
  const told = new Map<string, Map<string, number>>();
  let timer: NodeJS.Timeout | undefined;

  const tell = async (queue: string) => {
    const line = await workerQueueLine(deps.db, queue, deps.intervalMs);
    const medians = await medianRunSeconds([...new Set(line.map((j) => j.type))]);
    const before = told.get(queue) ?? new Map<string, number>();
    const now = new Map<string, number>();
    const publishes: Promise<unknown>[] = [];
    let waiting = false;
    for (const job of line) {
      const last = before.get(job.id);
      if (last !== undefined) now.set(job.id, last);
      // Not yet a full interval in the queue: a worker is likely to take it first; looked at again next pass.
      if (!job.waited) {
        waiting = true;
        continue;
      }
      if (last !== undefined && placeBucket(job.position) >= placeBucket(last)) continue;
      now.set(job.id, job.position);
      const eta = etaOf(medians.get(job.type) ?? null, Math.floor((job.position - 1) / job.workers));
      publishes.push(
        deps.events
          .publish(
            job.id,
            { type: "status", status: "queued", queue_position: job.position, queue_reason: "waiting_for_worker", eta_seconds: eta, ...(job.projectId ? { project_id: job.projectId } : {}) },
            // Only while it still waits: a worker's claim may have moved it on since the read.
            { whileQueued: true, floor: job.lastEventSeq },
          )
          .catch((err) => deps.log.warn({ err, job_id: job.id }, "could not publish a job's queue place")),
      );
    }
    told.set(queue, now);
    if (now.size === 0) told.delete(queue);
    await Promise.all(publishes);
    if (waiting) touch(queue);
  };

  const pass = async () => {
    timer = undefined;
    const queues = [...touched];
    touched.clear();
    for (const queue of queues) {
      await tell(queue).catch((err) => deps.log.warn({ err, queue }, "could not tell a worker queue's places"));
    }
  };

  /** A job left or joined `queue`'s line: its waiting jobs hear their new places at the next pass. */
  const touch = (queue: string) => {
    if (deps.intervalMs <= 0) return;
    touched.add(queue);
    if (!timer) {
      timer = setTimeout(() => void pass(), deps.intervalMs);
      // A pass pending must not hold the process (or a test) open.
      timer.unref();
    }
  };

  return { places, touch, medianRunSeconds };
}

export type QueueLines = ReturnType<typeof createQueueLines>;

/** The buckets places are told at: 1, 2, 3 each, then 4–7, 8–15, … together. */
export const placeBucket = (position: number) => (position <= 3 ? position : Math.floor(Math.log2(position)) + 2);

/** Seconds until a job finishes: the turns before its own (`turnsAhead`), then its own run, each the type's median. */
const etaOf = (median: number | null, turnsAhead: number) => (median === null ? null : Math.ceil(median * (turnsAhead + 1)));

/** The jobs of a worker queue a claim may take now (ADR 039): queued, not held, due, not expired. */
const claimable = (j: string) => sql.raw(`${j}.status = 'queued' and not ${j}.held and (${j}.next_attempt_at is null or ${j}.next_attempt_at <= now()) and (${j}.start_by is null or ${j}.start_by > now())`);

/**
 * Dispatched jobs' places in their worker queues: 1 + the jobs a claim takes before them (lower
 * run_order, ADR 039: a high job's earlier), and how many of the queue's jobs run now, the queue's
 * workers as far as the database sees them (at least 1).
 */
async function workerQueuePlaces(conn: Conn, rows: readonly JobRow[]): Promise<Map<string, { position: number; workers: number }>> {
  if (rows.length === 0) return new Map();
  const found = await executePrepared<{ id: string; place: number; workers: number }>(conn, sql`
    select h.id,
      (select count(*) from jobs.jobs w where w.queue = h.queue and ${claimable("w")} and (w.run_order, w.id) < (h.run_order, h.id))::int + 1 as place,
      (select count(*) from jobs.jobs r where r.queue = h.queue and r.status = 'running')::int as workers
    from jobs.jobs h
    where h.id = any(${sql.param(rows.map((r) => r.id))}::uuid[]) and h.status = 'queued' and not h.held and h.dispatched_at is not null`);
  return new Map([...found].map((r) => [r.id, { position: Number(r.place), workers: Math.max(1, Number(r.workers)) }]));
}

/** A worker queue's claimable jobs in the claim's order, with their places, those dispatched only; `waited`: dispatched more than `waitedMs` ago. */
async function workerQueueLine(conn: Conn, queue: string, waitedMs: number) {
  const rows = await executePrepared<{ id: string; type: string; project_id: string | null; last_event_seq: number; place: number; waited: boolean; workers: number }>(conn, sql`
    select * from (
      select j.id, j.type, j.project_id, j.last_event_seq, j.dispatched_at, row_number() over (order by j.run_order, j.id)::int as place,
        j.dispatched_at < now() - make_interval(secs => ${waitedMs / 1000}) as waited,
        (select count(*) from jobs.jobs r where r.queue = ${queue} and r.status = 'running')::int as workers
      from jobs.jobs j
      where j.queue = ${queue} and ${claimable("j")}
      order by j.run_order, j.id limit ${TOLD_PER_QUEUE}
    ) line where dispatched_at is not null`);
  return [...rows].map((r) => ({
    id: r.id,
    type: r.type,
    projectId: r.project_id,
    lastEventSeq: Number(r.last_event_seq),
    position: Number(r.place),
    waited: Boolean(r.waited),
    workers: Math.max(1, Number(r.workers)),
  }));
}
