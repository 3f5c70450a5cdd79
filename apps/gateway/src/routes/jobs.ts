import { CancelReply, CreateJobBody, CreateJobRequest, CreateJobsBatchBody, JobsBatchReply, maxBatchJobs, Estimate, EstimateJobRequest, IdempotencyKey, Job, JobTypeDescription, type JobTypeName, ListJobsQuery, describeJobType, jobTypes, page, IdParams } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance, FastifyReply, FastifySerializerCompiler } from "fastify";
import { serializerCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { canRun, listModelLevels } from "@cutroom/models";
import { callCtx } from "../context.ts";
import { noGatewayModels, type GatewayModels } from "../models.ts";
import { authErrors, bodyErrors, documentedAs, errorResponses, publicRoute } from "../plugins/openapi.ts";

export async function jobRoutes(base: FastifyInstance, { rpc, models = noGatewayModels() }: { rpc: RpcClient; models?: GatewayModels }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  // A model-backed type lists its levels and prices from the catalog this server runs with.
  const jobTypeList = (Object.keys(jobTypes) as JobTypeName[]).map((name) => {
    const description = describeJobType(name);
    if (!(jobTypes[name] as { models?: unknown }).models) return description;
    const levels = listModelLevels(models.catalog, name).map((l) => ({ ...l, price: l.price as Record<string, number> | null, available: canRun(l, models.provider) }));
    return { ...description, models: levels };
  });
  const tags = ["jobs"];

  app.get(
    "/job-types",
    {
      schema: {
        tags,
        operationId: "listJobTypes",
        summary: "The job types this server runs",
        description: "Every job type: its input JSON Schema, stages, presets and cost model.",
        ...publicRoute,
        response: { 200: z.object({ data: z.array(JobTypeDescription) }) },
      },
    },
    async () => ({ data: jobTypeList }),
  );

  app.post(
    "/jobs",
    {
      onRequest: app.authenticate,
      // Its own per-minute limit, exact across replicas, is taken as the job commits (ADR 027).
      config: { requestBudget: false },
      serializerCompiler: writtenAsParsed(202),
      schema: {
        tags,
        operationId: "createJob",
        summary: "Enqueue a job (credits are reserved now)",
        description: "Enqueue a job. Send an Idempotency-Key header to make retries safe. Limited per tier per minute (X-RateLimit-* headers).",
        headers: z.object({ "idempotency-key": IdempotencyKey.optional() }),
        body: documentedAs(CreateJobBody, CreateJobRequest),
        // 403: priority high on a tier that may not ask for it (ADR 039).
        response: { 202: Job, ...errorResponses(...authErrors, ...bodyErrors, 402, 403, 409, 429) },
      },
    },
    async (req, reply) => {
      const { job, created, rate } = await rpc.call("job", "create", { body: req.body, idempotency_key: req.headers["idempotency-key"] }, callCtx(req));
      if (rate) setRateHeaders(reply, rate);
      if (!created) reply.header("idempotent-replayed", "true");
      reply.code(202);
      return job;
    },
  );

  app.post(
    "/jobs/batch",
    {
      onRequest: app.authenticate,
      config: { requestBudget: false },
      serializerCompiler: writtenAsParsed(202),
      schema: {
        tags,
        operationId: "createJobsBatch",
        summary: `Enqueue 1 to ${maxBatchJobs} jobs together: all of them or none`,
        description:
          "Every job is checked first (422 naming jobs[i]); then the whole batch's credits are reserved (402 with required and available when short) and it takes one slot of the per-minute rate per job (429 when it does not fit), in one transaction: nothing is created or reserved unless all are. The jobs come back in the order asked. An Idempotency-Key replays the same jobs; another body under the same key is 409.",
        headers: z.object({ "idempotency-key": IdempotencyKey.optional() }),
        body: CreateJobsBatchBody,
        response: { 202: JobsBatchReply, ...errorResponses(...authErrors, ...bodyErrors, 402, 404, 409, 429) },
      },
    },
    async (req, reply) => {
      const { jobs, created, rate } = await rpc.call("job", "createBatch", { body: req.body, idempotency_key: req.headers["idempotency-key"] }, callCtx(req));
      if (rate) setRateHeaders(reply, rate);
      if (!created) reply.header("idempotent-replayed", "true");
      reply.code(202);
      return { jobs };
    },
  );

  app.post(
    "/jobs/estimate",
    {
      onRequest: app.authenticate,
      schema: {
        tags,
        operationId: "estimateJob",
        summary: "What a job would cost, without enqueueing it",
        body: documentedAs(CreateJobBody.pick({ type: true, input: true }), EstimateJobRequest),
        response: { 200: Estimate, ...errorResponses(...authErrors, ...bodyErrors) },
      },
    },
    async (req) => rpc.call("job", "estimate", req.body, callCtx(req)),
  );

  app.get(
    "/jobs",
    {
      onRequest: app.authenticate,
      // `metadata[key]=value` arrives as a key of its own: gathered into the object the schema checks.
      preValidation: async (req) => {
        req.query = gatherBracketed(req.query as Record<string, unknown>, "metadata") as typeof req.query;
      },
      schema: {
        tags,
        operationId: "listJobs",
        summary: "The caller's jobs, newest first",
        description: "Filters: status, type, project_id, display_name (part of it, any case), metadata[key]=value (repeatable; each top-level key of the job's metadata equal to the value).",
        querystring: ListJobsQuery,
        response: { 200: page(Job), ...errorResponses(...authErrors, 422) },
      },
    },

    async (req) => rpc.call("job", "list", req.query, callCtx(req)),
  );

  app.get(
    "/jobs/:id",
    {
      onRequest: app.authenticate,
      schema: { tags, operationId: "getJob", summary: "One job: status, progress, result, credits", params: IdParams, response: { 200: Job, ...errorResponses(...authErrors, 404, 422) } },
    },
    async (req) => rpc.call("job", "get", { job_id: req.params.id }, callCtx(req)),
  );

  app.post(
    "/jobs/:id/cancel",
    {
      onRequest: app.authenticate,
      schema: {
        tags,
        operationId: "cancelJob",
        summary: "Cancel a queued or running job",
        description: "Cancel a queued or running job; its reserved credits come back.",
        params: IdParams,
        response: { 200: CancelReply, ...errorResponses(...authErrors, 404, 409, 422) },
      },
    },
    async (req) => rpc.call("job", "cancel", { job_id: req.params.id }, callCtx(req)),
  );
}

/**
 * A route's serializers where its `status` answer is what the RPC client already parsed with the
 * same contract (ADR 032): written as it is, not checked by zod a second time (ADR 044). Its other
 * answers (the error envelopes) go through the schema as everywhere.
 */
function writtenAsParsed<T>(status: number): FastifySerializerCompiler<T> {
  const code = String(status);
  return (route) => (route.httpStatus === code ? (data: unknown) => JSON.stringify(data) : serializerCompiler(route as Parameters<typeof serializerCompiler>[0]));
}

/** `{"name[a]": "1", "name[b]": "2"}` → `{name: {a: "1", b: "2"}}`; the other keys as they are. A repeated key keeps its last value. */
function gatherBracketed(query: Record<string, unknown>, name: string): Record<string, unknown> {
  const prefix = `${name}[`;
  const keys = Object.keys(query).filter((k) => k.startsWith(prefix) && k.endsWith("]"));
  if (keys.length === 0) return query;
  const out: Record<string, unknown> = {};
  const gathered: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(query)) {
    if (!keys.includes(key)) out[key] = value;
    else gathered[key.slice(prefix.length, -1)] = Array.isArray(value) ? value.at(-1) : value;
  }
  out[name] = gathered;
  return out;
}

export function setRateHeaders(reply: FastifyReply, rate: { limit: number; remaining: number; reset: number }) {
  reply.header("x-ratelimit-limit", rate.limit);
  reply.header("x-ratelimit-remaining", rate.remaining);
  reply.header("x-ratelimit-reset", rate.reset);
}
