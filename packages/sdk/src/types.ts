/*
 * Every request and reply shape, inferred from the contracts' zod schemas (never written twice).
 * Type-only imports: the contracts package reads pipeline files with node:fs, so the client must
 * not load it at run time and stay usable in browsers.
 */
import type * as C from "@cutroom/contracts";
import type { z } from "zod";

/** A page of a listing: `data`, `total`, `limit`, `offset`, `has_more`. */
export type Page<S extends z.ZodType> = z.infer<ReturnType<typeof C.page<S>>>;

export type TokenPair = z.infer<typeof C.TokenPair>;
export type RegisterParams = z.input<typeof C.RegisterBody>;
export type RegisterReply = z.infer<typeof C.RegisterReply>;
export type LoginParams = z.input<typeof C.LoginBody>;
export type User = z.infer<typeof C.User>;
export type UserPage = Page<typeof C.User>;
export type AdminUserPatch = z.input<typeof C.AdminUserPatch>;
export type Health = z.infer<typeof C.Health>;
export type QueueDepth = z.infer<typeof C.QueueDepth>;
export type QueuesReply = z.infer<typeof C.QueuesReply>;
export type RequeueReply = z.infer<typeof C.RequeueReply>;

export type FileObject = z.infer<typeof C.FileObject>;
export type FilePage = Page<typeof C.FileObject>;
export type ListFilesParams = Partial<z.infer<typeof C.ListFilesQuery>>;
export type UploadTicket = z.infer<typeof C.UploadTicket>;
export type DownloadUrl = z.infer<typeof C.DownloadUrl>;
export type ChunkedUploadTicket = z.infer<typeof C.ChunkedUploadTicket>;
export type ChunkReceipt = z.infer<typeof C.ChunkReceipt>;
export type ResumableUploadStatus = z.infer<typeof C.ResumableUpload>;
export type CompletedUpload = z.infer<typeof C.CompletedUpload>;

export type Job = z.infer<typeof C.Job>;
export type JobStatus = z.infer<typeof C.JobStatus>;
export type JobPage = Page<typeof C.Job>;
export type ListJobsParams = Partial<z.infer<typeof C.ListJobsQuery>>;
export type JobEvent = z.infer<typeof C.JobEvent>;
export type CancelJobReply = z.infer<typeof C.CancelReply>;
export type Estimate = z.infer<typeof C.Estimate>;
export type JobTypeDescription = z.infer<typeof C.JobTypeDescription>;
/** Every job type this version of the contracts knows: `image.thumbnail`, `video.color-grade`, … */
export type JobTypeName = C.JobTypeName;
/** What `POST /jobs` takes as `input` for job type `T` (fields with defaults may be left out). */
export type JobInput<T extends JobTypeName> = z.input<(typeof C.jobTypes)[T]["input"]>;
/** A job to create: its type, that type's input, and optionally a project. */
/** The body of POST /jobs with `input` typed by the job type; the other fields as the contract has them. */
export type CreateJobParams<T extends JobTypeName> = Omit<z.input<typeof C.CreateJobBody>, "type" | "input"> & { type: T; input: JobInput<T> };
export type JobsBatchReply = z.infer<typeof C.JobsBatchReply>;

export type Pipeline = z.infer<typeof C.Pipeline>;
export type PipelineStatus = z.infer<typeof C.PipelineStatus>;
export type PipelinePage = Page<typeof C.Pipeline>;
export type PipelineEvent = z.infer<typeof C.PipelineEvent>;
export type PipelineTypeDescription = z.infer<typeof C.PipelineTypeDescription>;
export type CreatePipelineParams = z.input<typeof C.CreatePipelineBody>;
export type ListPipelinesParams = Partial<z.infer<typeof C.ListPipelinesQuery>>;
export type ApprovePipelineParams = z.input<typeof C.ApprovePipelineBody>;
export type CancelPipelineReply = z.infer<typeof C.CancelPipelineReply>;

export type Project = z.infer<typeof C.Project>;
export type ProjectPage = Page<typeof C.Project>;
export type CreateProjectParams = z.input<typeof C.CreateProjectBody>;
export type UpdateProjectParams = z.input<typeof C.UpdateProjectBody>;
export type ListProjectsParams = Partial<z.infer<typeof C.ListProjectsQuery>>;
export type ProjectAsset = z.infer<typeof C.ProjectAsset>;
export type ProjectAssetPage = Page<typeof C.ProjectAsset>;
export type ListProjectAssetsParams = Partial<z.infer<typeof C.ProjectAssetsFilter>>;
export type ApproveFilesParams = z.input<typeof C.ApprovalsBody>;
export type ApproveFilesReply = z.infer<typeof C.ApprovalsReply>;
export type ProjectCosts = z.infer<typeof C.ProjectCosts>;

export type ErrorEnvelope = z.infer<typeof C.ErrorEnvelope>;
/** The codes the API documents; a newer server may answer others, so errors carry a plain string. */
export type ErrorCode = C.ErrorCode;
