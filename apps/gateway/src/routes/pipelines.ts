import { ApprovePipelineBody, CancelPipelineReply, CreatePipelineBody, IdempotencyKey, IdParams, ListPipelinesQuery, Pipeline, PipelineTypeDescription, page } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";
import { authErrors, bodyErrors, errorResponses, publicRoute } from "../plugins/openapi.ts";

/** Pipelines (ADR 025): runs of stages of ordinary jobs; the caller's own only, another user's is 404 as for jobs. */
export async function pipelineRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["pipelines"];

  app.get(
    "/pipeline-types",
    {
      schema: {
        tags,
        operationId: "listPipelineTypes",
        summary: "The pipeline types this server runs",
        description: "Every pipeline type: its input JSON Schema, its stages (jobs or approval gates, with what each waits for) and its flavors.",
        ...publicRoute,
        response: { 200: z.object({ data: z.array(PipelineTypeDescription) }), ...errorResponses(503) },
      },
    },
    async (req) => rpc.call("job", "pipelineTypes", {}, callCtx(req)),
  );

  app.post(
    "/pipelines",
    {
      onRequest: app.authenticate,
      schema: {
        tags,
        operationId: "createPipeline",
        summary: "Start a pipeline run (its first stage's credits are reserved now)",
        description:
          "Starts a run of a pipeline type with a flavor (the type's default_flavor when absent). The answer carries the estimate of the whole run (credits and eta_seconds, every gate assumed to pass all outputs of its stage); 402 when the first stage's jobs cost more than the caller has. Later stages reserve their credits as they start. Takes one slot of the tier's per-minute job window. Send an Idempotency-Key header to make retries safe: the same key and request answer the run made before (header `idempotent-replayed: true`), the same key with another request 409.",
        headers: z.object({ "idempotency-key": IdempotencyKey.optional() }),
        body: CreatePipelineBody,
        response: { 202: Pipeline, ...errorResponses(...authErrors, ...bodyErrors, 402, 404, 409, 429) },
      },
    },
    async (req, reply) => {
      const { replayed, ...pipeline } = await rpc.call("job", "createPipeline", { ...req.body, idempotency_key: req.headers["idempotency-key"] }, callCtx(req));
      if (replayed) reply.header("idempotent-replayed", "true");
      reply.code(202);
      return pipeline;
    },
  );

  app.get(
    "/pipelines",
    {
      onRequest: app.authenticate,
      schema: { tags, operationId: "listPipelines", summary: "The caller's pipeline runs, newest first", querystring: ListPipelinesQuery, response: { 200: page(Pipeline), ...errorResponses(...authErrors, 422) } },
    },
    async (req) => rpc.call("job", "listPipelines", req.query, callCtx(req)),
  );

  app.get(
    "/pipelines/:id",
    {
      onRequest: app.authenticate,
      schema: { tags, operationId: "getPipeline", summary: "One run: status, progress, stages and their jobs, outputs, credits", params: IdParams, response: { 200: Pipeline, ...errorResponses(...authErrors, 404, 422) } },
    },
    async (req) => rpc.call("job", "getPipeline", { pipeline_id: req.params.id }, callCtx(req)),
  );

  app.post(
    "/pipelines/:id/approve",
    {
      onRequest: app.authenticate,
      schema: {
        tags,
        operationId: "approvePipeline",
        summary: "Open a gate with the chosen outputs",
        description: "Approves outputs of the gated stage (each must be one of its outputs, their number within the gate's bounds) and starts the stages that waited for the gate, reserving their credits. 402 when those cost more than the caller has: the gate stays open and nothing is reserved, so approve again after buying credits. 409 unless the gate is waiting for approval.",
        params: IdParams,
        body: ApprovePipelineBody,
        response: { 200: Pipeline, ...errorResponses(...authErrors, ...bodyErrors, 402, 404, 409) },
      },
    },
    async (req) => rpc.call("job", "approvePipeline", { pipeline_id: req.params.id, ...req.body }, callCtx(req)),
  );

  app.post(
    "/pipelines/:id/cancel",
    {
      onRequest: app.authenticate,
      schema: {
        tags,
        operationId: "cancelPipeline",
        summary: "Cancel a run",
        description: "Cancels the run's queued and running jobs (their reserved credits come back, as POST /jobs/{id}/cancel gives them back) and marks the stages not done canceled.",
        params: IdParams,
        response: { 200: CancelPipelineReply, ...errorResponses(...authErrors, 404, 409, 422) },
      },
    },
    async (req) => rpc.call("job", "cancelPipeline", { pipeline_id: req.params.id }, callCtx(req)),
  );
}
