import { randomUUID } from "node:crypto";
import { AppError, isAppError, toPage, type Caller, type ProjectAsset } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import type { RpcClient, RpcContext, RpcHandlers } from "@cutroom/runtime";
import {
  activeProjectJobIds,
  getLiveProject,
  insertProject,
  liveProjectPipelineIds,
  listProjects,
  markProjectDeleted,
  outputOrder,
  projectApprovalMap,
  projectCosts,
  projectJobs,
  setApprovals,
  stageOfJob,
  toProject,
  updateProject,
} from "./project-store.ts";

type ProjectMethods = "createProject" | "listProjects" | "getProject" | "updateProject" | "deleteProject" | "projectAssets" | "approveFiles" | "projectCosts";

/** Cancels one job of the caller as POST /jobs/{id}/cancel does; answers the credits refunded. */
export type CancelJob = (caller: Caller, jobId: string, ctx: RpcContext) => Promise<{ credits_refunded: number }>;

/** Cancels one pipeline run of the caller as POST /pipelines/{id}/cancel does; answers the credits refunded. */
export type CancelPipeline = (caller: Caller, pipelineId: string, ctx: RpcContext) => Promise<{ credits_refunded: number }>;

/**
 * Projects (ADR 024): a user's named group of jobs and files, with the user's approvals of its files
 * and what its jobs cost. The files stay storage-service's, asked for with the owner's rights.
 */
export function createProjectHandlers({ db, rpc }: { db: Db; rpc: RpcClient }, cancelJob: CancelJob, cancelPipeline: CancelPipeline): Pick<RpcHandlers<"job">, ProjectMethods> {
  const callCtx = (ctx: RpcContext, caller: Caller) => ({ requestId: ctx.requestId, caller, deadline: ctx.deadline });

  const liveProject = async (caller: Caller, projectId: string) => {
    const found = await getLiveProject(db, caller.user_id, projectId);
    if (!found) throw new AppError("NOT_FOUND", "project not found", { project_id: projectId });
    return found;
  };

  return {
    createProject: async ({ name, description }, ctx) => {
      const caller = requireCaller(ctx);
      const row = await insertProject(db, { id: randomUUID(), userId: caller.user_id, name, description: description ?? null });
      return toProject(row, 0);
    },

    listProjects: async (query, ctx) => {
      const { rows, total } = await listProjects(db, requireCaller(ctx).user_id, query);
      return toPage(
        rows.map((r) => toProject(r.row, r.jobCount)),
        total,
        query,
      );
    },

    getProject: async ({ project_id }, ctx) => {
      const { row, jobCount } = await liveProject(requireCaller(ctx), project_id);
      return toProject(row, jobCount);
    },

    updateProject: async ({ project_id, patch }, ctx) => {
      const caller = requireCaller(ctx);
      const row = await updateProject(db, caller.user_id, project_id, patch);
      if (!row) throw new AppError("NOT_FOUND", "project not found", { project_id });
      return toProject(row, (await liveProject(caller, project_id)).jobCount);
    },

    // Marked first: from then on no job or upload names it. Then its runs and jobs end and its files
    // go; a retry of a delete that failed part-way finishes the rest.
    deleteProject: async ({ project_id }, ctx) => {
      const caller = requireCaller(ctx);
      if (!(await markProjectDeleted(db, caller.user_id, project_id))) throw new AppError("NOT_FOUND", "project not found", { project_id });
      const active = await activeProjectJobIds(db, caller.user_id, project_id);
      let pipelines_canceled = 0;
      let credits_refunded = 0;
      // Runs before jobs: a run whose job is canceled under it would fail instead, and a run at a gate
      // has no job to cancel and would wait forever, its next stage's jobs refused by the project check.
      for (const pipelineId of await liveProjectPipelineIds(db, caller.user_id, project_id)) {
        try {
          credits_refunded += (await cancelPipeline(caller, pipelineId, ctx)).credits_refunded;
          pipelines_canceled++;
        } catch (err) {
          if (!(isAppError(err) && err.code === "INVALID_STATE")) throw err;
        }
      }
      const left = await activeProjectJobIds(db, caller.user_id, project_id);
      // The runs' jobs their cancels ended.
      let jobs_canceled = active.length - active.filter((id) => left.includes(id)).length;
      for (const jobId of left) {
        try {
          credits_refunded += (await cancelJob(caller, jobId, ctx)).credits_refunded;
          jobs_canceled++;
        } catch (err) {
          // Ended on its own meanwhile: nothing left to cancel.
          if (!(isAppError(err) && err.code === "INVALID_STATE")) throw err;
        }
      }
      const { deleted } = await rpc.call("storage", "deleteProjectFiles", { project_id }, callCtx(ctx, caller));
      ctx.log.info({ project_id, pipelines_canceled, jobs_canceled, credits_refunded, files_deleted: deleted }, "project deleted");
      return { jobs_canceled, credits_refunded, files_deleted: deleted };
    },

    projectAssets: async ({ project_id, kind, approved, stage, limit, offset }, ctx) => {
      const caller = requireCaller(ctx);
      await liveProject(caller, project_id);
      const [approvals, jobs] = await Promise.all([projectApprovalMap(db, project_id), projectJobs(db, caller.user_id, project_id)]);
      const jobsById = new Map(jobs.map((j) => [j.id, j]));
      // The filters storage cannot know are turned into the file and job ids it can narrow to.
      const file_ids = approved === undefined ? undefined : [...approvals].filter(([, a]) => a === approved).map(([id]) => id);
      const job_ids = stage === undefined ? undefined : jobs.filter((j) => stageOfJob(j) === stage).map((j) => j.id);
      const files = await rpc.call("storage", "projectFiles", { project_id, kind, file_ids, job_ids, limit, offset }, callCtx(ctx, caller));
      const order = outputOrder(jobs);
      const data = files.data.map((file): ProjectAsset => {
        const job = file.job_id ? jobsById.get(file.job_id) : undefined;
        return {
          ...file,
          role: file.folder === "output" ? "output" : "input",
          stage: job ? stageOfJob(job) : null,
          order: order.get(file.id) ?? null,
          approved: approvals.get(file.id) ?? null,
        };
      });
      return { ...files, data };
    },

    // Every file must be a ready file of the project, or nothing is marked.
    approveFiles: async ({ project_id, file_ids, approved }, ctx) => {
      const caller = requireCaller(ctx);
      await liveProject(caller, project_id);
      const found = await rpc.call("storage", "projectFiles", { project_id, file_ids, limit: 100, offset: 0 }, callCtx(ctx, caller));
      const inProject = new Set(found.data.map((f) => f.id));
      const missing = file_ids.filter((id) => !inProject.has(id));
      if (missing.length > 0) {
        throw new AppError("INVALID_INPUT", `${missing.length} of file_ids name no ready file of the project`, {
          file_ids: missing,
          fields: missing.map((id) => ({ path: `file_ids.${file_ids.indexOf(id)}`, message: "no ready file of the project" })),
        });
      }
      const approved_count = await setApprovals(db, project_id, file_ids, approved);
      return { project_id, approved, file_ids, approved_count };
    },

    projectCosts: async ({ project_id }, ctx) => {
      const caller = requireCaller(ctx);
      await liveProject(caller, project_id);
      return projectCosts(db, caller.user_id, project_id);
    },
  };
}

function requireCaller(ctx: RpcContext): Caller {
  if (!ctx.caller) throw new AppError("UNAUTHORIZED", "sign in to use projects");
  return ctx.caller;
}
