import { randomBytes, randomUUID } from "node:crypto";
import { AppError, getJobType, jobTypes, type WorkerToken } from "@cutroom/contracts";
import { and, desc, eq, isNull, sqlTag as sql, type Db } from "@cutroom/db";
import { workerTokens } from "@cutroom/db/auth";
import type { RpcContext, RpcHandlers } from "@cutroom/runtime";
import { hashToken } from "./refresh-tokens.ts";

/** What starts every worker token: the gateway tells it from a user's access token (a JWT) without a call. */
export const WORKER_TOKEN_PREFIX = "cwk_";

type Row = typeof workerTokens.$inferSelect;
const toWorkerToken = (row: Row): WorkerToken => ({
  id: row.id,
  name: row.name,
  job_types: row.jobTypes,
  created_by: row.createdBy,
  created_at: row.createdAt.toISOString(),
  last_used_at: row.lastUsedAt?.toISOString() ?? null,
  revoked_at: row.revokedAt?.toISOString() ?? null,
});

/**
 * Worker tokens (ADR 040): an admin makes one scoped to job types and sees its secret once; only the
 * secret's SHA-256 is stored. The gateway verifies the token on every worker request, so a revoke
 * counts from the next request on, on every gateway.
 */
export function createWorkerTokenHandlers(db: Db, requireAdmin: (ctx: RpcContext) => Promise<{ id: string }>): Pick<
  RpcHandlers<"auth">,
  "createWorkerToken" | "listWorkerTokens" | "revokeWorkerToken" | "verifyWorkerToken"
> {
  return {
    createWorkerToken: async ({ name, job_types }, ctx) => {
      const admin = await requireAdmin(ctx);
      const unknown = job_types.filter((t) => !getJobType(t));
      if (unknown.length > 0) {
        throw new AppError("INVALID_INPUT", `unknown job type ${unknown[0]}`, { field: "job_types", unknown, known_types: Object.keys(jobTypes) });
      }
      const token = `${WORKER_TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
      const [row] = await db
        .insert(workerTokens)
        .values({ id: randomUUID(), name, jobTypes: [...new Set(job_types)], tokenHash: hashToken(token), createdBy: admin.id })
        .returning();
      ctx.log.info({ admin_id: admin.id, worker_token_id: row!.id, job_types }, "worker token created");
      return { ...toWorkerToken(row!), token };
    },

    listWorkerTokens: async (_body, ctx) => {
      await requireAdmin(ctx);
      const rows = await db.select().from(workerTokens).orderBy(desc(workerTokens.createdAt)).limit(1000);
      return { data: rows.map(toWorkerToken) };
    },

    revokeWorkerToken: async ({ token_id }, ctx) => {
      const admin = await requireAdmin(ctx);
      const [row] = await db
        .update(workerTokens)
        .set({ revokedAt: sql`coalesce(${workerTokens.revokedAt}, now())` })
        .where(eq(workerTokens.id, token_id))
        .returning();
      if (!row) throw new AppError("NOT_FOUND", "worker token not found", { token_id });
      ctx.log.info({ admin_id: admin.id, worker_token_id: token_id }, "worker token revoked");
      return toWorkerToken(row);
    },

    verifyWorkerToken: async ({ token }) => {
      const refused = new AppError("UNAUTHORIZED", "invalid or revoked worker token");
      if (!token.startsWith(WORKER_TOKEN_PREFIX)) throw refused;
      const [row] = await db
        .select()
        .from(workerTokens)
        .where(and(eq(workerTokens.tokenHash, hashToken(token)), isNull(workerTokens.revokedAt)));
      if (row && (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000)) {
        // At most once a minute: a busy worker's every heartbeat is not a write.
        await db.update(workerTokens).set({ lastUsedAt: sql`now()` }).where(eq(workerTokens.id, row.id));
      }
      if (!row) throw refused;
      return { token_id: row.id, name: row.name, job_types: row.jobTypes };
    },
  };
}
