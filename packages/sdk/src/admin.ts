import type { Transport } from "./transport.ts";
import type { AdminUserPatch, Health, QueuesReply, RequeueReply, User, UserPage } from "./types.ts";

/** Operators' calls: an admin's token is needed (403 otherwise), but for health(), which shows less to others. */
export class AdminApi {
  constructor(private readonly t: Transport) {}

  /** Users, jobs and storage totals. */
  stats(): Promise<Record<string, number | null>> {
    return this.t.json("GET", "/admin/stats");
  }

  /** A page of users (`limit` up to 100). */
  users(params: { limit?: number; offset?: number } = {}): Promise<UserPage> {
    return this.t.json("GET", "/admin/users", { query: params });
  }

  /** Changes a user's role or tier, or disables them: their tokens answer 401 at once, a refresh carries the change. */
  updateUser(id: string, patch: AdminUserPatch): Promise<User> {
    return this.t.json("PATCH", `/admin/users/${id}`, { json: patch });
  }

  /** Gives a user `amount` credits; answers their balance. */
  grantCredits(id: string, params: { amount: number; note?: string }): Promise<{ credits: number }> {
    return this.t.json("POST", `/admin/users/${id}/credits`, { json: params });
  }

  /** Every worker queue: jobs queued, held and running, and its consumer's pending and unacknowledged messages. */
  queues(): Promise<QueuesReply> {
    return this.t.json("GET", "/admin/queues");
  }

  /** Runs a failed job again as a new job of its owner (credits reserved once, however often asked; 409 unless it failed). */
  requeueJob(id: string): Promise<RequeueReply> {
    return this.t.json("POST", `/admin/jobs/${id}/requeue`, { json: {} });
  }

  /** GET /workers: the worker registry, on servers that have one (others answer 404 "no route for …"); its shape is not in the contracts yet. */
  workers(): Promise<Record<string, unknown>> {
    return this.t.json("GET", "/workers");
  }

  /** Asks a worker process to take no new jobs and finish those it has, on servers with the registry (404 "no route for …" on others). */
  drainWorker(id: string): Promise<Record<string, unknown>> {
    return this.t.json("POST", `/workers/${encodeURIComponent(id)}/drain`, { json: {} });
  }

  /** Lets a drained worker take jobs again (the undo of drainWorker). */
  resumeWorker(id: string): Promise<Record<string, unknown>> {
    return this.t.json("POST", `/workers/${encodeURIComponent(id)}/resume`, { json: {} });
  }

  /** GET /health: every dependency, service and worker kind; with an admin's token each process as `instances`. Answers a 503's report too. */
  health(): Promise<Health> {
    return this.t.json("GET", "/health", { root: true, okStatuses: [503] });
  }
}
