import { randomUUID } from "node:crypto";
import { AppError, defaultJobControl, getJobType, jobLimits, type JobStorageAccess, type WorkerIdentity } from "@cutroom/contracts";
import { sqlTag as sql, type Db } from "@cutroom/db";
import type { JobEventPublisher, RpcClient, RpcContext, RpcHandlers } from "@cutroom/runtime";
import { countStarted } from "./job-metrics.ts";
import { getJob, type JobRow } from "./job-store.ts";

export interface WorkerLeaseDeps {
  db: Db;
  rpc: RpcClient;
  events: JobEventPublisher;
  /** The job lease (JOB_LEASE_MS): a worker's lease_s is held to it, as a job event extends a lease by it. */
  leaseMs: number;
  /** What every claim does once Postgres handed a job over (its running event, deadline, storage access); `outside`: URLs for a worker outside. */
  started: (row: JobRow, worker: string, ctx: RpcContext, outside: boolean) => Promise<{ lastEventSeq: number; storage?: JobStorageAccess }>;
  /** job-service's own finish: the ending, the credits and the terminal event, as for a NATS worker. */
  finish: RpcHandlers<"job">["finish"];
  /** The file ids a job's input names. */
  inputFiles: (row: JobRow) => string[];
}

type Handlers = Pick<RpcHandlers<"job">, "workerLease" | "workerHeartbeat" | "workerEvents" | "workerInput" | "workerOutput" | "workerConfirmOutput" | "workerFinish" | "workerInFlight">;

/** A lease that is still the job's claim: the job runs under the lease's dispatch and its lease has not run out. */
interface LiveLease {
  id: string;
  job: JobRow;
  dispatch: number;
  lastEventSeq: number;
  expiresAt: Date;
}

/**
 * Workers over HTTP (ADR 040). A lease is a claim in Postgres like a NATS worker's, under a dispatch
 * number of its own (negative: the claim's attempt, so never a broker message's), so that the job's
 * message, reaching a NATS worker, finds it running and serves the next job of its queue instead;
 * a lease that runs out is taken over as a dead NATS worker's claim is. Events go out through the same
 * publisher and events consumer as a NATS worker's, the ending through job-service's finish.
 */
export function createWorkerLeaseHandlers(deps: WorkerLeaseDeps): Handlers {
  const { db, rpc, events } = deps;
  const leaseMsOf = (leaseS: number | undefined) => Math.min(leaseS === undefined ? deps.leaseMs : leaseS * 1000, deps.leaseMs);

  /**
   * The lease as the job's claim now, refused with LEASE_LOST (NOT_FOUND for another token's lease).
   * `renewMs`: renewed for that long, the job's own lease_until at least as far, so that a NATS
   * worker's claim, which reads only that, never takes over a live lease.
   */
  const liveLease = async (leaseId: string, worker: WorkerIdentity, renew?: { ms?: number }): Promise<LiveLease> => {
    const [lease] = await db.execute<{ job_id: string; dispatch: number; last_event_seq: number; lease_ms: number; expires_at: string }>(
      sql`select job_id, dispatch, last_event_seq, lease_ms, expires_at from jobs.worker_leases where id = ${leaseId}::uuid and token_id = ${worker.token_id}::uuid`,
    );
    if (!lease) throw new AppError("NOT_FOUND", "lease not found", { lease_id: leaseId });
    let expiresAt = new Date(lease.expires_at);
    if (renew) {
      const ms = renew.ms ?? lease.lease_ms;
      const [renewed] = await db.execute<{ expires_at: string }>(sql`
        update jobs.worker_leases l set expires_at = now() + make_interval(secs => ${ms / 1000}), lease_ms = ${ms}
        from jobs.jobs j
        where l.id = ${leaseId}::uuid and j.id = l.job_id and j.status = 'running' and j.claimed_dispatch = l.dispatch and l.expires_at >= now()
        returning l.expires_at`);
      if (renewed) {
        expiresAt = new Date(renewed.expires_at);
        await db.execute(sql`
          update jobs.jobs set lease_until = greatest(lease_until, now() + make_interval(secs => ${ms / 1000})), updated_at = now()
          where id = ${lease.job_id}::uuid and status = 'running' and claimed_dispatch = ${lease.dispatch}`);
      }
    }
    const job = await getJob(db, lease.job_id);
    if (job?.status !== "running" || job.claimedDispatch !== lease.dispatch || expiresAt.getTime() < Date.now()) {
      const reason = job?.status !== "running" ? "the job is no longer running" : job.claimedDispatch !== lease.dispatch ? "another worker holds the job now" : "the lease expired";
      throw new AppError("LEASE_LOST", `this lease is no longer the job's claim: ${reason}`, { lease_id: leaseId, job_id: lease.job_id, status: job?.status ?? null });
    }
    return { id: leaseId, job, dispatch: lease.dispatch, lastEventSeq: lease.last_event_seq, expiresAt };
  };
  const leaseState = (lease: LiveLease) => ({ lease_id: lease.id, job_id: lease.job.id, expires_at: lease.expiresAt.toISOString() });

  return {
    workerLease: async ({ job_types, lease_s, name, worker }, ctx) => {
      const outside = job_types.filter((t) => !worker.job_types.includes(t));
      if (outside.length > 0) throw new AppError("FORBIDDEN", `this worker token may not lease ${outside.join(", ")} jobs`, { job_types: outside, allowed: worker.job_types });
      const queues = [...new Set(job_types.map((t) => getJobType(t)?.queue).filter((q) => q !== undefined))];
      const leaseId = randomUUID();
      const leaseMs = leaseMsOf(lease_s);
      const workerName = name ?? worker.name;
      // One statement: the job served first of these types (run_order, as a NATS claim's queue turn) that is
      // queued and due, or running under an HTTP lease that ran out with attempts left (one that ran out on its
      // last attempt is the reconciler's to fail, WORKER_LOST); claimed, and the lease recorded with it.
      const rows = await db.execute<{ id: string }>(sql`
        with pick as (
          select j.id from jobs.jobs j
          where j.queue = any(${sql.param(queues)}::text[]) and j.type = any(${sql.param(job_types)}::text[])
            and ((j.status = 'queued' and not j.held and (j.next_attempt_at is null or j.next_attempt_at <= now()) and (j.start_by is null or j.start_by > now() or j.started_at is not null))
              or (j.status = 'running' and j.claimed_dispatch < 0 and j.attempts < coalesce(j.max_attempts, ${defaultJobControl.maxAttempts}) and exists (
                select 1 from jobs.worker_leases l where l.job_id = j.id and l.dispatch = j.claimed_dispatch and l.expires_at < now())))
          order by j.run_order, j.id limit 1
          for update of j skip locked
        ), claimed as (
          update jobs.jobs j set
            status = 'running', attempts = j.attempts + 1, started_at = coalesce(j.started_at, now()),
            lease_until = now() + make_interval(secs => ${leaseMs / 1000}), claimed_dispatch = -(j.attempts + 1), claimed_via = null,
            run_deadline = case when j.timeout_s is null then null else now() + make_interval(secs => j.timeout_s) end,
            next_attempt_at = null, updated_at = now()
          from pick where j.id = pick.id
          returning j.id, j.claimed_dispatch
        ), lease as (
          insert into jobs.worker_leases (id, job_id, dispatch, token_id, worker, lease_ms, expires_at)
          select ${leaseId}::uuid, id, claimed_dispatch, ${worker.token_id}::uuid, ${workerName}, ${leaseMs}, now() + make_interval(secs => ${leaseMs / 1000}) from claimed
        )
        select id from claimed`);
      if (!rows[0]) return { lease: null };
      const row = countStarted((await getJob(db, rows[0].id))!);
      ctx.log.info({ job_id: row.id, lease_id: leaseId, worker: workerName, worker_token_id: worker.token_id, attempt: row.attempts }, "job leased over HTTP");
      const { lastEventSeq, storage } = await deps.started(row, `${workerName} (http)`, ctx, true);
      await db.execute(sql`update jobs.worker_leases set last_event_seq = ${lastEventSeq} where id = ${leaseId}::uuid`);
      const definition = getJobType(row.type)!;
      return {
        lease: {
          lease_id: leaseId,
          expires_at: row.leaseUntil!.toISOString(),
          job: {
            id: row.id,
            type: row.type,
            input: row.input,
            attempt: row.attempts,
            stages: [...definition.stages],
            limits: jobLimits(row.tier ?? "enterprise"),
            timeout_s: row.timeoutS ?? null,
          },
          inputs: storage?.inputs ?? {},
        },
      };
    },

    workerHeartbeat: async ({ lease_id, worker, lease_s }) => leaseState(await liveLease(lease_id, worker, { ...(lease_s !== undefined ? { ms: leaseMsOf(lease_s) } : {}) })),

    workerEvents: async ({ lease_id, worker, events: reported }) => {
      // An event is a heartbeat too, as a NATS worker's extends its lease.
      const lease = await liveLease(lease_id, worker, {});
      const stages = getJobType(lease.job.type)?.stages ?? [];
      const wrong = reported.find((e) => (e.type === "stage" || (e.type === "progress" && e.stage !== undefined)) && !stages.includes(e.stage!));
      if (wrong && "stage" in wrong) throw new AppError("INVALID_INPUT", `"${wrong.stage}" is not a stage of ${lease.job.type} (${stages.join(", ")})`, { field: "events", stage: wrong.stage, stages });
      let last = Math.max(lease.lastEventSeq, lease.job.lastEventSeq);
      let published = 0;
      for (const event of reported) {
        const out = await events.publish(lease.job.id, event, { floor: last });
        if (out) {
          last = Math.max(last, out.seq);
          published++;
        }
      }
      await db.execute(sql`update jobs.worker_leases set last_event_seq = greatest(last_event_seq, ${last}) where id = ${lease_id}::uuid`);
      return { ...leaseState(lease), published };
    },

    workerInput: async ({ lease_id, worker, file_id }) => {
      const lease = await liveLease(lease_id, worker);
      if (!deps.inputFiles(lease.job).includes(file_id)) throw new AppError("NOT_FOUND", "the job's input names no such file", { file_id });
      return rpc.call("storage", "inputUrl", { owner_id: lease.job.userId, file_id, public: true });
    },

    workerOutput: async ({ lease_id, worker, filename, content_type }) => {
      const lease = await liveLease(lease_id, worker);
      const { job } = lease;
      return rpc.call("storage", "createOutput", { owner_id: job.userId, job_id: job.id, filename, content_type, ...(job.projectId ? { project_id: job.projectId } : {}), public: true });
    },

    workerConfirmOutput: async ({ lease_id, worker, file_id }) => {
      const lease = await liveLease(lease_id, worker);
      await requireOutputsOf(db, lease.job.id, [file_id], ["pending", "receiving", "uploaded", "ready"]);
      return rpc.call("storage", "confirmOutput", { owner_id: lease.job.userId, file_id });
    },

    // Live: the lease is still its job's claim and has not run out. The instance's leases are found through the running
    // jobs (jobs_status_idx), not by scanning every lease ever taken.
    workerInFlight: async ({ worker, name }) => {
      const [row] = await db.execute<{ n: number }>(sql`
        select count(*)::int as n from jobs.jobs j join jobs.worker_leases l on l.job_id = j.id and l.dispatch = j.claimed_dispatch
        where j.status = 'running' and j.claimed_dispatch < 0 and l.token_id = ${worker.token_id}::uuid and l.worker = ${name ?? worker.name} and l.expires_at > now()`);
      // Jobs its leases ended in the last hour (a lease ended its job when the job's claim is still that lease's).
      const ended = await db.execute<{ status: string; ms: number }>(sql`
        select j.status, (extract(epoch from (j.completed_at - l.created_at)) * 1000)::int as ms
        from jobs.worker_leases l join jobs.jobs j on j.id = l.job_id and j.claimed_dispatch = l.dispatch
        where l.token_id = ${worker.token_id}::uuid and l.worker = ${name ?? worker.name} and l.created_at > now() - interval '1 hour'
          and j.status in ('succeeded', 'failed') and j.completed_at > now() - interval '1 hour'
        order by j.completed_at`);
      return {
        in_flight: row?.n ?? 0,
        done_last_hour: ended.length,
        failed_last_hour: ended.filter((e) => e.status === "failed").length,
        recent_durations_ms: ended.slice(-30).map((e) => Math.max(0, e.ms)),
      };
    },

    workerFinish: async ({ lease_id, worker, outcome }, ctx) => {
      const lease = await liveLease(lease_id, worker);
      const finishOutcome =
        outcome.status === "succeeded"
          ? { status: "succeeded" as const, result: { ...outcome.result, files: await requireOutputsOf(db, lease.job.id, outcome.result.files.map((f) => f.file_id), ["ready"]) } }
          : outcome;
      const reply = await deps.finish({ job_id: lease.job.id, dispatch: lease.dispatch, outcome: finishOutcome, last_event_seq: Math.max(lease.lastEventSeq, lease.job.lastEventSeq) }, ctx);
      // Taken or ended between the check and the finish's own: the finish matches the claim's dispatch.
      if (!reply.applied) throw new AppError("LEASE_LOST", "this lease is no longer the job's claim", { lease_id, job_id: lease.job.id, status: reply.status });
      ctx.log.info({ job_id: lease.job.id, lease_id, status: reply.status }, "HTTP worker finished its job");
      return { job_id: lease.job.id, status: reply.status, applied: true as const };
    },
  };
}

/**
 * The result files a worker names, as the job's own outputs in storage's rows (read as storage
 * keeps them, ADR 027): another job's file, or one not uploaded, is refused.
 */
async function requireOutputsOf(db: Db, jobId: string, fileIds: string[], statuses: string[]) {
  if (fileIds.length === 0) return [];
  const rows = await db.execute<{ id: string; filename: string; content_type: string; size: number | string | null; status: string }>(sql`
    select id, filename, content_type, size, status from storage.files
    where id = any(${sql.param(fileIds)}::uuid[]) and job_id = ${jobId}::uuid and folder = 'output'`);
  const found = new Map(rows.map((r) => [r.id, r]));
  return fileIds.map((id) => {
    const row = found.get(id);
    if (!row) throw new AppError("INVALID_INPUT", "a result file is not an output of this job", { field: "result.files", file_id: id });
    if (!statuses.includes(row.status)) throw new AppError("INVALID_INPUT", `a result file is not ready (${row.status}): confirm it first`, { field: "result.files", file_id: id, status: row.status });
    return { file_id: row.id, filename: row.filename, content_type: row.content_type, size: Number(row.size ?? 0) };
  });
}
