import { z } from "zod";
import { CreateJobBody } from "./jobs.ts";
import { type JobTypeName, jobTypes } from "./job-types.ts";

/** `video.color-grade` → `VideoColorGrade`: a job type as a schema name a generated client can use. */
export const jobTypeSchemaName = (type: string) =>
  type
    .split(/[.\-_]/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join("");

const typeNames = Object.keys(jobTypes) as JobTypeName[];
// One schema per input, named after its type, so the create and estimate bodies share it.
const inputs = new Map<JobTypeName, z.ZodType>(typeNames.map((type) => [type, (jobTypes[type].input as z.ZodType).meta({ id: jobTypeSchemaName(type) })]));

function unionOfTypes(prefix: string, extra: z.ZodRawShape) {
  const members = typeNames.map((type) => z.object({ type: z.literal(type), input: inputs.get(type)!, ...extra }).meta({ id: `${prefix}${jobTypeSchemaName(type)}Job` }));
  return z.discriminatedUnion("type", members as [(typeof members)[number], ...(typeof members)[number][]]).meta({ discriminator: { propertyName: "type" } });
}

/**
 * POST /jobs's body as the API document describes it: one schema per registered job type, told
 * apart by `type`, so a client generated from the document types each job's input. Documentation
 * only: requests are still checked by CreateJobBody, then by the type's own input schema in
 * job-service, which is what names each problem in a 422.
 */
export const CreateJobRequest = unionOfTypes("Create", { project_id: CreateJobBody.shape.project_id, display_name: CreateJobBody.shape.display_name, metadata: CreateJobBody.shape.metadata,
  priority: CreateJobBody.shape.priority,
  start_within_s: CreateJobBody.shape.start_within_s,
  timeout_s: CreateJobBody.shape.timeout_s,
});

/** POST /jobs/estimate's body as the API document describes it (CreateJobRequest without project_id). */
export const EstimateJobRequest = unionOfTypes("Estimate", {});
