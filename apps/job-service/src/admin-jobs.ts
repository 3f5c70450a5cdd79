import { AppError, consumers, Queue, streams, type Caller, type CreateJobBody, type Job, type QueueDepth } from "@cutroom/contracts";
import { sqlTag as sql, type Db } from "@cutroom/db";
import type { RpcContext, RpcHandlers } from "@cutroom/runtime";
import type { JetStreamClient } from "@nats-io/jetstream";
import { getJob } from "./job-store.ts";

/** How job-service's own creation path is called for a requeue: the owner as caller, a key, no rate slot. */
export type CreateForOwner = (caller: Caller, body: CreateJobBody, idempotencyKey: string, ctx: RpcContext) => Promise<{ job: Job; created: boolean }>;

/**
 * The key a requeue creates its job under, in the owner's idempotency keys: the new job's id follows
 * from it (jobIdFor), so asking twice, or two admins at once, makes one job with one reservation.
 */
export const requeueKey = (failedJobId: string) => `requeue:${failedJobId}`;

/** Admins' RPCs: every worker queue's depth, and a failed job run again. */
export function createAdminJobHandlers({ db, js, create }: { db: Db; js: JetStreamClient; create: CreateForOwner }): Pick<RpcHandlers<"job">, "queues" | "requeue"> {
  return {
    queues: async (_body, ctx) => {
      requireAdmin(ctx);
      const [counts, pending] = await Promise.all([countActive(db), consumerPending(js)]);
      const data: QueueDepth[] = Queue.options.map((queue) => ({
        queue,
        queued: counts.get(queue)?.queued ?? 0,
        held: counts.get(queue)?.held ?? 0,
        running: counts.get(queue)?.running ?? 0,
        pending: pending.get(queue)?.pending ?? null,
        ack_pending: pending.get(queue)?.ack_pending ?? null,
      }));
      return { data };
    },

    // A new job, not the old row run again: billing reserves and settles once per job id (the failed
    // one's reservation is released already), and the failed job stays the record of what happened.
    requeue: async ({ job_id }, ctx) => {
      requireAdmin(ctx);
      const row = await getJob(db, job_id);
      if (!row) throw new AppError("NOT_FOUND", "job not found");
      if (row.status !== "failed") throw new AppError("INVALID_STATE", `only a failed job can be requeued; this one is ${row.status}`, { status: row.status });
      if (row.pipelineId) {
        throw new AppError("INVALID_STATE", "the job is a stage of a pipeline run: a job run alone would not advance the run", { pipeline_id: row.pipelineId });
      }
      // Held to the limits of the tier it was enqueued with; the owner's credits pay, as for the first run.
      const owner: Caller = { user_id: row.userId, role: "user", tier: row.tier ?? "free" };
      const body = { type: row.type, input: row.input as Record<string, unknown>, ...(row.projectId ? { project_id: row.projectId } : {}) } as CreateJobBody;
      const { job, created } = await create(owner, body, requeueKey(row.id), ctx);
      ctx.log.info({ job_id, new_job_id: job.id, created, by: ctx.caller?.user_id }, "failed job requeued");
      return { job, requeued_from: row.id, created };
    },
  };
}

function requireAdmin(ctx: RpcContext) {
  if (ctx.caller?.role !== "admin") throw new AppError("FORBIDDEN", "admins only");
}

async function countActive(db: Db) {
  const rows = await db.execute<{ queue: string; queued: number; held: number; running: number }>(sql`
    select queue,
      count(*) filter (where status = 'queued')::int as queued,
      count(*) filter (where status = 'queued' and held)::int as held,
      count(*) filter (where status = 'running')::int as running
    from jobs.jobs where status in ('queued', 'running') group by queue`);
  return new Map([...rows].map((r) => [r.queue, r]));
}

/** Each worker queue's consumer on JOBS: not yet delivered, and delivered but not acked. Absent until a worker of the kind made it. */
async function consumerPending(js: JetStreamClient) {
  const jsm = await js.jetstreamManager();
  const found = new Map<string, { pending: number; ack_pending: number }>();
  await Promise.all(
    Queue.options.map(async (queue) => {
      const info = await jsm.consumers.info(streams.jobs.name, consumers.worker(queue)).catch((err: Error) => {
        if (/consumer not found|not found/i.test(err.message)) return null;
        throw err;
      });
      if (info) found.set(queue, { pending: info.num_pending, ack_pending: info.num_ack_pending });
    }),
  );
  return found;
}
