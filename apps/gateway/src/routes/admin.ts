import { AdminGrantBody, AdminUserPatch, CreatedWorkerToken, CreateWorkerTokenBody, Pagination, QueuesReply, RequeueReply, User, WorkerToken, page, IdParams } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";
import { bodyErrors, errorResponses } from "../plugins/openapi.ts";

const AdminStats = z.object({
  total_users: z.number().int(),
  users_today: z.number().int(),
  active_jobs: z.number().int(),
  completed_jobs_today: z.number().int(),
  average_processing_time_minutes: z.number().nullable(),
  total_files: z.number().int(),
  total_storage_gb: z.number(),
});

export async function adminRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["admin"];
  app.addHook("onRequest", app.requireAdmin);
  const adminErrors = [401, 403, 503] as const;

  app.get("/admin/stats", { schema: { tags, operationId: "getAdminStats", summary: "Users, jobs and storage totals", response: { 200: AdminStats, ...errorResponses(...adminErrors) } } }, async (req) => {
    const [users, jobs, storage] = await Promise.all([
      rpc.call("auth", "stats", {}, callCtx(req)),
      rpc.call("job", "stats", {}, callCtx(req)),
      rpc.call("storage", "stats", {}, callCtx(req)),
    ]);
    return { ...users, ...jobs, total_files: storage.total_files, total_storage_gb: Math.round((storage.total_bytes / 1024 ** 3) * 1000) / 1000 };
  });

  app.get("/admin/users", { schema: { tags, operationId: "listUsers", summary: "Every user, in pages", querystring: Pagination, response: { 200: page(User), ...errorResponses(...adminErrors, 422) } } }, async (req) =>
    rpc.call("auth", "listUsers", req.query, callCtx(req)),
  );

  app.patch(
    "/admin/users/:id",
    {
      schema: {
        tags,
        operationId: "updateUser",
        summary: "Change a user's role or tier, or disable them",
        description:
          "Takes effect at once: the user's access tokens answer 401 (token revoked), and a refresh gives one with the new role and tier. Disabling also revokes their refresh tokens; a disabled user cannot sign in or use a token (403 ACCOUNT_DISABLED) until enabled again.",
        params: IdParams,
        body: AdminUserPatch,
        response: { 200: User, ...errorResponses(...adminErrors, ...bodyErrors, 404) },
      },
    },
    async (req) => {
      const user = await rpc.call("auth", "updateUser", { user_id: req.params.id, ...req.body }, callCtx(req));
      await app.userChanged(req.params.id);
      return user;
    },
  );

  app.post(
    "/admin/users/:id/credits",
    {
      schema: {
        tags,
        operationId: "grantCredits",
        summary: "Give a user credits",
        params: IdParams,
        body: AdminGrantBody,
        response: { 200: z.object({ credits: z.number().int() }), ...errorResponses(...adminErrors, ...bodyErrors, 404) },
      },
    },
    // Through auth-service, which checks the caller is still an admin before billing grants anything.
    async (req) => rpc.call("auth", "grantCredits", { user_id: req.params.id, ...req.body }, callCtx(req)),
  );

  // Worker tokens (ADR 040): for machines that lease jobs over HTTP, each scoped to job types.
  app.post(
    "/admin/worker-tokens",
    {
      schema: {
        tags,
        operationId: "createWorkerToken",
        summary: "Make a worker token",
        description: "For a machine that leases jobs of job_types over HTTP (/api/v1/worker). The secret is in this answer only; only its hash is kept.",
        body: CreateWorkerTokenBody,
        response: { 201: CreatedWorkerToken, ...errorResponses(...adminErrors, ...bodyErrors) },
      },
    },
    async (req, reply) => {
      const created = await rpc.call("auth", "createWorkerToken", req.body, callCtx(req));
      return reply.code(201).send(created);
    },
  );

  app.get(
    "/admin/worker-tokens",
    { schema: { tags, operationId: "listWorkerTokens", summary: "Every worker token, without its secret", response: { 200: z.object({ data: z.array(WorkerToken) }), ...errorResponses(...adminErrors) } } },
    async (req) => rpc.call("auth", "listWorkerTokens", {}, callCtx(req)),
  );

  app.delete(
    "/admin/worker-tokens/:id",
    {
      schema: {
        tags,
        operationId: "revokeWorkerToken",
        summary: "Revoke a worker token",
        description: "At once: its next request is 401. A job it holds goes back for another worker when its lease runs out.",
        params: IdParams,
        response: { 204: z.null(), ...errorResponses(...adminErrors, 404) },
      },
    },
    async (req, reply) => {
      await rpc.call("auth", "revokeWorkerToken", { token_id: req.params.id }, callCtx(req));
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/admin/queues",
    {
      schema: {
        tags,
        operationId: "getQueues",
        summary: "Every worker queue's depth",
        description: "Per worker queue: its jobs queued (and of those, held for a concurrency slot) and running, from the database, and its JetStream consumer's undelivered (pending) and unacknowledged (ack_pending) messages.",
        response: { 200: QueuesReply, ...errorResponses(...adminErrors) },
      },
    },
    async (req) => rpc.call("job", "queues", {}, callCtx(req)),
  );

  app.post(
    "/admin/jobs/:id/requeue",
    {
      schema: {
        tags,
        operationId: "requeueJob",
        summary: "Run a failed job again",
        description:
          "Makes a new job of the failed job's owner, type, input and project, reserving its credits from the owner's balance (402 when short), without taking a rate slot. Asked again for the same failed job, it answers the same new job (idempotent-replayed: true) and reserves nothing more. 409 unless the job failed, or when it is a stage of a pipeline run.",
        params: IdParams,
        response: { 202: RequeueReply, ...errorResponses(...adminErrors, 402, 404, 409, 422) },
      },
    },
    async (req, reply) => {
      const requeued = await rpc.call("job", "requeue", { job_id: req.params.id }, callCtx(req));
      if (!requeued.created) reply.header("idempotent-replayed", "true");
      reply.code(202);
      return requeued;
    },
  );
}
