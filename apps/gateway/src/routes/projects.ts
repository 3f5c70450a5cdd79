import {
  ApprovalsBody,
  ApprovalsReply,
  CreateProjectBody,
  IdParams,
  ListProjectsQuery,
  Project,
  ProjectAsset,
  ProjectAssetsQuery,
  ProjectCosts,
  UpdateProjectBody,
  page,
} from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";
import { authErrors, bodyErrors, errorResponses } from "../plugins/openapi.ts";

/** Projects: the caller's own only; another user's project is 404, as for jobs and files. */
export async function projectRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["projects"];
  app.addHook("onRequest", app.authenticate);

  app.post(
    "/projects",
    {
      schema: {
        tags,
        operationId: "createProject",
        summary: "Create a project to group jobs and files",
        body: CreateProjectBody,
        response: { 201: Project, ...errorResponses(...authErrors, ...bodyErrors) },
      },
    },
    async (req, reply) => {
      const project = await rpc.call("job", "createProject", req.body, callCtx(req));
      reply.code(201);
      return project;
    },
  );

  app.get(
    "/projects",
    {
      schema: { tags, operationId: "listProjects", summary: "The caller's projects, newest first", querystring: ListProjectsQuery, response: { 200: page(Project), ...errorResponses(...authErrors, 422) } },
    },
    async (req) => rpc.call("job", "listProjects", req.query, callCtx(req)),
  );

  app.get(
    "/projects/:id",
    { schema: { tags, operationId: "getProject", summary: "One project", params: IdParams, response: { 200: Project, ...errorResponses(...authErrors, 404, 422) } } },
    async (req) => rpc.call("job", "getProject", { project_id: req.params.id }, callCtx(req)),
  );

  app.patch(
    "/projects/:id",
    {
      schema: {
        tags,
        operationId: "updateProject",
        summary: "Rename a project or change its description",
        params: IdParams,
        body: UpdateProjectBody,
        response: { 200: Project, ...errorResponses(...authErrors, ...bodyErrors, 404) },
      },
    },
    async (req) => rpc.call("job", "updateProject", { project_id: req.params.id, patch: req.body }, callCtx(req)),
  );

  app.delete(
    "/projects/:id",
    {
      schema: {
        tags,
        operationId: "deleteProject",
        summary: "Delete a project, its running jobs and its files",
        description: "Its queued and running jobs are canceled (unspent credits come back) and its files are deleted; the project is then 404.",
        params: IdParams,
        response: { 204: z.null(), ...errorResponses(...authErrors, 404, 422) },
      },
    },
    async (req, reply) => {
      await rpc.call("job", "deleteProject", { project_id: req.params.id }, callCtx(req));
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/projects/:id/assets",
    {
      schema: {
        tags,
        operationId: "listProjectAssets",
        summary: "Every ready input and output file of a project, oldest first",
        description: "Each file with its role (input or output), the job and pipeline stage that made it, its order among the job's outputs, and its approval.",
        params: IdParams,
        querystring: ProjectAssetsQuery,
        response: { 200: page(ProjectAsset), ...errorResponses(...authErrors, 404, 422) },
      },
    },
    async (req) => rpc.call("job", "projectAssets", { ...req.query, project_id: req.params.id }, callCtx(req)),
  );

  app.post(
    "/projects/:id/approvals",
    {
      schema: {
        tags,
        operationId: "approveProjectFiles",
        summary: "Approve (or reject) files of a project",
        description: "Marks every file given, or none: each must be a ready file of the project (422 naming those that are not).",
        params: IdParams,
        body: ApprovalsBody,
        response: { 200: ApprovalsReply, ...errorResponses(...authErrors, ...bodyErrors, 404) },
      },
    },
    async (req) => rpc.call("job", "approveFiles", { ...req.body, project_id: req.params.id }, callCtx(req)),
  );

  app.get(
    "/projects/:id/costs",
    {
      schema: {
        tags,
        operationId: "getProjectCosts",
        summary: "What a project's jobs cost, in credits and provider USD",
        params: IdParams,
        response: { 200: ProjectCosts, ...errorResponses(...authErrors, 404, 422) },
      },
    },
    async (req) => rpc.call("job", "projectCosts", { project_id: req.params.id }, callCtx(req)),
  );
}
