import { CutroomError } from "./errors.ts";
import { type EventStreamOptions, followEvents, sleep } from "./events.ts";
import { newIdempotencyKey, type Transport } from "./transport.ts";
import type { CancelJobReply, CreateJobParams, Estimate, Job, JobEvent, JobPage, JobStatus, JobsBatchReply, JobTypeDescription, JobTypeName, ListJobsParams } from "./types.ts";

export const terminalJobStatuses: readonly JobStatus[] = ["succeeded", "failed", "canceled"];
export const isTerminalJobEvent = (e: JobEvent) => e.type === "result" || e.type === "error";

export interface WaitOptions {
  signal?: AbortSignal;
  /** Polling interval when live events cannot be used. Default 1000 ms. */
  pollIntervalMs?: number;
}

export class JobsApi {
  constructor(private readonly t: Transport) {}

  /** Every job type: its input JSON Schema, presets and cost. */
  async types(): Promise<JobTypeDescription[]> {
    return (await this.t.json<{ data: JobTypeDescription[] }>("GET", "/job-types", { auth: false })).data;
  }

  /**
   * Enqueues a job (202). An Idempotency-Key is made for the call unless given, so the retry after
   * a token refresh, or the caller's own retry with the same key, addresses the same job.
   */
  create<T extends JobTypeName>(params: CreateJobParams<T>, opts: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<Job> {
    const key = opts.idempotencyKey ?? newIdempotencyKey();
    return this.t.json("POST", "/jobs", { json: params, headers: { "idempotency-key": key }, signal: opts.signal });
  }

  /**
   * create() for a type known only at run time (a CLI argument, a newer server's type): the input
   * is not checked here, the server answers 422 naming the fields it refuses.
   */
  createUntyped(params: { type: string; input: Record<string, unknown> } & Omit<CreateJobParams<JobTypeName>, "type" | "input">, opts: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<Job> {
    return this.create(params as CreateJobParams<JobTypeName>, opts);
  }

  /**
   * Enqueues up to 100 jobs all together or none (202 {jobs} in the order given): one invalid input is
   * a 422 naming `jobs[i]`, a balance short for the whole batch a 402, and nothing is created.
   */
  createBatch(jobs: CreateJobParams<JobTypeName>[], opts: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<JobsBatchReply> {
    const key = opts.idempotencyKey ?? newIdempotencyKey();
    return this.t.json("POST", "/jobs/batch", { json: { jobs }, headers: { "idempotency-key": key }, signal: opts.signal });
  }

  /** What a job would cost, without enqueueing it. */
  estimate<T extends JobTypeName>(params: Omit<CreateJobParams<T>, "project_id">): Promise<Estimate> {
    return this.t.json("POST", "/jobs/estimate", { json: params });
  }

  get(id: string, opts: { signal?: AbortSignal } = {}): Promise<Job> {
    return this.t.json("GET", `/jobs/${id}`, { signal: opts.signal });
  }

  /** `metadata: {key: value}` finds jobs whose metadata has each key with exactly that value. */
  list(params: ListJobsParams = {}): Promise<JobPage> {
    const { metadata, ...rest } = params;
    const query: Record<string, string | number | boolean | undefined> = { ...rest };
    for (const [key, value] of Object.entries(metadata ?? {})) query[`metadata[${key}]`] = value;
    return this.t.json("GET", "/jobs", { query });
  }

  /** Cancels a queued or running job; its reserved credits come back (409 once it has ended). */
  cancel(id: string): Promise<CancelJobReply> {
    return this.t.json("POST", `/jobs/${id}/cancel`, { json: {} });
  }

  /**
   * A job's events in seq order over a WebSocket, ending after its terminal event (`result` or
   * `error`); reconnects with `since` when the socket drops, so none is missed or repeated.
   */
  events(id: string, opts: EventStreamOptions = {}): AsyncGenerator<JobEvent, void, undefined> {
    return followEvents<JobEvent>(this.t, "jobs", id, isTerminalJobEvent, opts);
  }

  /** Waits until the job has ended and returns it: by its live events, else by polling. */
  async wait(id: string, opts: WaitOptions = {}): Promise<Job> {
    if (this.t.WebSocket) {
      try {
        for await (const _ of this.events(id, { signal: opts.signal })) {
          // The stream ends after the terminal event.
        }
        const job = await this.get(id, opts);
        if (terminalJobStatuses.includes(job.status)) return job;
      } catch (err) {
        // What polling would meet too (no such job, no session) is the answer; a failing socket is not.
        if (opts.signal?.aborted || (err instanceof CutroomError && err.status >= 400 && err.status < 500)) throw err;
      }
    }
    for (;;) {
      const job = await this.get(id, opts);
      if (terminalJobStatuses.includes(job.status)) return job;
      await sleep(opts.pollIntervalMs ?? 1000, opts.signal);
    }
  }
}
