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
export const tierLimits: Record<Tier, { jobsPerMinute: number; concurrentJobs: number; maxFileBytes: number }> = {
  free: { jobsPerMinute: 10, concurrentJobs: 1, maxFileBytes: 500 * 1024 ** 2 },
  pro: { jobsPerMinute: 60, concurrentJobs: 3, maxFileBytes: 2 * 1024 ** 3 },
  enterprise: { jobsPerMinute: 300, concurrentJobs: 10, maxFileBytes: 5 * 1024 ** 3 },
};

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
