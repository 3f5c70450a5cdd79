import { AdminGrantBody, AdminUserPatch, Pagination, User, page, IdParams } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";

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

  app.get("/admin/stats", { schema: { tags, response: { 200: AdminStats } } }, async (req) => {
    const [users, jobs, storage] = await Promise.all([
      rpc.call("auth", "stats", {}, callCtx(req)),
      rpc.call("job", "stats", {}, callCtx(req)),
      rpc.call("storage", "stats", {}, callCtx(req)),
    ]);
    return { ...users, ...jobs, total_files: storage.total_files, total_storage_gb: Math.round((storage.total_bytes / 1024 ** 3) * 1000) / 1000 };
  });

  app.get("/admin/users", { schema: { tags, querystring: Pagination, response: { 200: page(User) } } }, async (req) =>
    rpc.call("auth", "listUsers", req.query, callCtx(req)),
  );

  app.patch("/admin/users/:id", { schema: { tags, params: IdParams, body: AdminUserPatch, response: { 200: User } } }, async (req) =>
    rpc.call("auth", "updateUser", { user_id: req.params.id, ...req.body }, callCtx(req)),
  );

  app.post(
    "/admin/users/:id/credits",
    { schema: { tags, params: IdParams, body: AdminGrantBody, response: { 200: z.object({ credits: z.number().int() }) } } },
    async (req) => rpc.call("billing", "grant", { user_id: req.params.id, ...req.body }, callCtx(req)),
  );
}
