import type { RpcClient } from "@cutroom/runtime";

// Durations kept for the registry's average: enough to smooth one slow job, small enough for every heartbeat.
const RECENT = 20;
const MINUTE_MS = 60_000;

export interface JobStats {
  /** The jobs this process ended in the last hour (succeeded or failed) and of those failed; the last jobs' durations in ms. */
  read: (now?: number) => { doneLastHour: number; failedLastHour: number; recentDurationsMs: number[] };
}

/**
 * Counts the jobs this process ends, as it reports them: a claim starts one, a finish ends it. Sixty
 * minute buckets, so an hour's count costs the same whatever the throughput; nothing is sent per job.
 */
export function countJobEndings(rpc: RpcClient, clock: () => number = Date.now): { rpc: RpcClient; stats: JobStats } {
  const started = new Map<string, number>();
  const buckets = new Map<number, { done: number; failed: number }>();
  const recent: number[] = [];
  const ended = (jobId: string, failed: boolean) => {
    const now = clock();
    const minute = Math.floor(now / MINUTE_MS);
    const bucket = buckets.get(minute) ?? buckets.set(minute, { done: 0, failed: 0 }).get(minute)!;
    bucket.done++;
    if (failed) bucket.failed++;
    for (const m of buckets.keys()) if (m <= minute - 60) buckets.delete(m);
    const at = started.get(jobId);
    started.delete(jobId);
    if (at !== undefined) {
      recent.push(now - at);
      if (recent.length > RECENT) recent.shift();
    }
  };
  const observed: RpcClient = {
    async call(service, method, body, ctx) {
      const reply = await rpc.call(service, method, body, ctx);
      if (service === "job" && method === "claim") {
        const claim = body as { job_id: string };
        // A claimed job handed back never finishes here: its entry goes when the map is full.
        if (started.size >= 1000) started.clear();
        if ((reply as { run?: boolean }).run) started.set(claim.job_id, clock());
      } else if (service === "job" && method === "finish") {
        const finish = body as { job_id: string; outcome: { status: string } };
        ended(finish.job_id, finish.outcome.status === "failed");
      }
      return reply;
    },
  };
  return {
    rpc: observed,
    stats: {
      read(now = clock()) {
        const since = Math.floor(now / MINUTE_MS) - 59;
        let doneLastHour = 0;
        let failedLastHour = 0;
        for (const [m, b] of buckets) {
          if (m < since) continue;
          doneLastHour += b.done;
          failedLastHour += b.failed;
        }
        return { doneLastHour, failedLastHour, recentDurationsMs: [...recent] };
      },
    },
  };
}
