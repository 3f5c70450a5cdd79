import { z } from "zod";
import { Pagination, Timestamp, Uuid } from "./common.ts";
import { FileKind, FileObject } from "./files.ts";

export const ProjectName = z.string().trim().min(1).max(200);
export const ProjectDescription = z.string().max(2000);

export const CreateProjectBody = z.object({ name: ProjectName, description: ProjectDescription.optional() });
export type CreateProjectBody = z.infer<typeof CreateProjectBody>;

export const UpdateProjectBody = z
  .object({ name: ProjectName.optional(), description: ProjectDescription.nullable().optional().describe("null clears it") })
  .refine((b) => b.name !== undefined || b.description !== undefined, "give name or description");
export type UpdateProjectBody = z.infer<typeof UpdateProjectBody>;

export const Project = z
  .object({
    id: Uuid,
    name: z.string(),
    description: z.string().nullable(),
    job_count: z.number().int().describe("jobs enqueued in the project"),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: "Project" });
export type Project = z.infer<typeof Project>;

export const ListProjectsQuery = Pagination;

/** A file of a project as the project sees it: where it came from, its place, and the user's verdict. */
export const ProjectAsset = FileObject.extend({
  role: z.enum(["input", "output"]).describe("input: uploaded into the project; output: made by one of its jobs"),
  stage: z.string().nullable().describe("the pipeline stage of the job that made it; null for uploads and for jobs outside pipelines"),
  order: z.number().int().nullable().describe("0-based position among its job's result files, or for a pipeline stage's job among the stage's outputs; null for uploads"),
  approved: z.boolean().nullable().describe("the user's verdict (POST /projects/{id}/approvals); null until given"),
}).meta({ id: "ProjectAsset" });
export type ProjectAsset = z.infer<typeof ProjectAsset>;

/** The filters of an assets listing, as job-service takes them (booleans already parsed). */
export const ProjectAssetsFilter = Pagination.extend({
  kind: FileKind.optional(),
  approved: z.boolean().optional().describe("true: approved files; false: files marked not approved (files not judged match neither)"),
  stage: z.string().min(1).max(100).optional(),
});

/** The same filters as a query string: `approved` arrives as text. */
export const ProjectAssetsQuery = ProjectAssetsFilter.extend({
  approved: z
    .enum(["true", "false"])
    .transform((v) => v === "true")
    .optional()
    .describe("true: approved files; false: files marked not approved (files not judged match neither)"),
});

export const ApprovalsBody = z.object({
  file_ids: z
    .array(Uuid)
    .min(1)
    .max(100)
    .refine((ids) => new Set(ids).size === ids.length, "file_ids must not repeat"),
  approved: z.boolean(),
});
export type ApprovalsBody = z.infer<typeof ApprovalsBody>;
export const ApprovalsReply = z.object({ project_id: Uuid, approved: z.boolean(), file_ids: z.array(Uuid), approved_count: z.number().int().describe("files of the project approved now, after this call") });

export const ProjectCostLine = z.object({
  job_type: z.string(),
  model: z.string().nullable().describe("the model the jobs ran, as their results record it; null for jobs that ran none"),
  credits: z.number().int().describe("credits captured (succeeded jobs)"),
  usd: z.number().describe("what the model provider charged, in USD (failed runs included)"),
  units: z.number().describe("seconds of video or audio made, or else images made, or else jobs (see docs/adr/024-projects.md)"),
  count: z.number().int().describe("jobs in the line: those ended that were charged credits or ran a model"),
});
export const ProjectCosts = z
  .object({ project_id: Uuid, total_credits: z.number().int(), total_usd: z.number(), breakdown: z.array(ProjectCostLine) })
  .meta({ id: "ProjectCosts" });
export type ProjectCosts = z.infer<typeof ProjectCosts>;

export const DeleteProjectReply = z.object({ jobs_canceled: z.number().int(), credits_refunded: z.number().int(), files_deleted: z.number().int() });
