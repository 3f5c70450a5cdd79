import { z } from "zod";

export const Uuid = z.uuid();
/** Path parameters of routes on one resource: `/files/{id}`, `/jobs/{id}`, … */
export const IdParams = z.object({ id: Uuid });
export const Timestamp = z.string().describe("ISO 8601 date-time");

export const Tier = z.enum(["free", "pro", "enterprise"]);
export type Tier = z.infer<typeof Tier>;
export const Role = z.enum(["user", "admin"]);
export type Role = z.infer<typeof Role>;

/** Limits per tier, as in seed 004. Sign-up credits are a setting of auth-service (SIGNUP_CREDITS). */
export const tierLimits: Record<Tier, TierLimits> = {
  free: { jobsPerMinute: 10, promptEnhancementsPerMinute: 30, concurrentJobs: 1, maxFileBytes: 500 * 1024 ** 2, maxInputPixels: 8192 ** 2, maxOutputPixels: 4096 ** 2, maxMediaSeconds: 10 * 60, maxSegments: 3, storageQuotaBytes: 5 * 1024 ** 3 },
  pro: { jobsPerMinute: 60, promptEnhancementsPerMinute: 120, concurrentJobs: 3, maxFileBytes: 2 * 1024 ** 3, maxInputPixels: 16384 ** 2, maxOutputPixels: 8192 ** 2, maxMediaSeconds: 60 * 60, maxSegments: 10, storageQuotaBytes: 50 * 1024 ** 3 },
  enterprise: { jobsPerMinute: 300, promptEnhancementsPerMinute: 600, concurrentJobs: 10, maxFileBytes: 5 * 1024 ** 3, maxInputPixels: 16384 ** 2, maxOutputPixels: 16384 ** 2, maxMediaSeconds: 4 * 60 * 60, maxSegments: 50, storageQuotaBytes: 500 * 1024 ** 3 },
};

/**
 * A small file can ask for a lot of work (a 126-byte PNG resized to 16384×16384), so a tier bounds
 * the work itself too: checked at enqueue from the input files' media facts, and again by the worker.
 */
export interface TierLimits {
  jobsPerMinute: number;
  /** POST /prompts/enhance calls a minute (seed 001: 30 on free). */
  promptEnhancementsPerMinute: number;
  concurrentJobs: number;
  maxFileBytes: number;
  /** The largest picture a job may decode: an input image, or one frame of an input video. */
  maxInputPixels: number;
  /** The largest picture a job may write: an output image, or one frame of an output video. */
  maxOutputPixels: number;
  /** The longest video or audio input a job may read. */
  maxMediaSeconds: number;
  /** The most segments one job may edit (video.lipsync's, seed 004's pro-sync). */
  maxSegments: number;
  /** The bytes a user's files may take together: stored files and uploads under way (ADR 031). */
  storageQuotaBytes: number;
}

/** Per-minute windows billing counts (billing.rate), each with its limit per tier. */
export const rateBuckets = {
  "jobs.create": (l: TierLimits) => l.jobsPerMinute,
  "prompts.enhance": (l: TierLimits) => l.promptEnhancementsPerMinute,
} as const;
export type RateBucket = keyof typeof rateBuckets;

export const Pagination = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  offset: z.coerce.number().int().min(0).default(0),
});
export type Pagination = z.infer<typeof Pagination>;

export const page = <T extends z.ZodType>(item: T) =>
  z.object({
    data: z.array(item),
    total: z.number().int(),
    limit: z.number().int(),
    offset: z.number().int(),
    has_more: z.boolean(),
  });

export function toPage<T>(data: T[], total: number, p: Pagination) {
  return { data, total, limit: p.limit, offset: p.offset, has_more: p.offset + data.length < total };
}

/** Who is calling: carried on every internal request. */
export const Caller = z.object({ user_id: Uuid, role: Role, tier: Tier });
export type Caller = z.infer<typeof Caller>;
