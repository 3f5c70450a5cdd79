import { z } from "zod";
import { JobError, JobResult, JobStatus } from "./jobs.ts";
import { Uuid } from "./common.ts";

const base = { job_id: Uuid, seq: z.number().int().positive(), timestamp: z.string() };

/** What travels on `jobs.events.<jobId>`: a per-job `seq` that only grows lets clients resume. */
export const JobEvent = z.discriminatedUnion("type", [
  z.object({ ...base, type: z.literal("status"), status: JobStatus, message: z.string().optional() }),
  z.object({ ...base, type: z.literal("stage"), stage: z.string(), status: z.enum(["running", "done", "failed", "skipped"]) }),
  z.object({ ...base, type: z.literal("progress"), progress: z.number().min(0).max(100), stage: z.string().optional() }),
  z.object({ ...base, type: z.literal("log"), level: z.enum(["info", "warn", "error"]), message: z.string() }),
  z.object({ ...base, type: z.literal("result"), status: z.literal("succeeded"), result: JobResult }),
  z.object({ ...base, type: z.literal("error"), status: z.enum(["failed", "canceled"]), error: JobError }),
]);
export type JobEvent = z.infer<typeof JobEvent>;
export type JobEventInput = JobEvent extends infer E ? (E extends unknown ? Omit<E, "job_id" | "seq" | "timestamp"> : never) : never;

export const isTerminalEvent = (e: JobEvent) => e.type === "result" || e.type === "error";
