import { jobTypes, WorkerInstance, WorkersReply, type JobTypeName } from "@cutroom/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { errorResponses } from "../plugins/openapi.ts";
import type { WorkerRegistry } from "../worker-registry.ts";

/** Per job type: its queue and how many healthy instances (draining ones not counted) take it. */
export function servingByJobType(instances: WorkerInstance[]): WorkersReply["job_types"] {
  return Object.fromEntries(
    (Object.keys(jobTypes) as JobTypeName[]).map((type) => [
      type,
      { queue: jobTypes[type].queue, healthy_instances: instances.filter((i) => i.status === "healthy" && i.job_types.includes(type)).length },
    ]),
  );
}

export async function workerRoutes(base: FastifyInstance, { workers }: { workers: WorkerRegistry }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["admin"];
  app.addHook("onRequest", app.requireAdmin);
  const adminErrors = [401, 403, 503] as const;
  const params = z.object({ id: z.string().min(1).max(200) });

  app.get(
    "/workers",
    {
      schema: {
        tags,
        operationId: "listWorkers",
        summary: "Every worker instance, its status and load, and who serves each job type",
        description:
          "From the worker registry (each worker process heartbeats its load there): each instance with its status (healthy; unhealthy after two missed heartbeats or while its pulls fail; draining; gone when silent longer than WORKER_GONE_AFTER_MS or stopped, listed for an hour), load (working slots in use, 0–100), jobs in hand, the jobs it ended and failed in the last hour as it counts them; and per job type how many healthy instances take it.",
        response: { 200: WorkersReply, ...errorResponses(...adminErrors) },
      },
    },
    async () => {
      const instances = workers.list();
      return { workers: instances, job_types: servingByJobType(instances) };
    },
  );

  for (const action of ["drain", "resume"] as const) {
    app.post(
      `/workers/:id/${action}`,
      {
        schema: {
          tags,
          operationId: `${action}Worker`,
          summary: action === "drain" ? "Stop a worker instance taking jobs; it finishes those in hand" : "Let a drained worker instance take jobs again",
          description:
            action === "drain"
              ? "The instance pulls no more jobs from its queue (another instance takes them) and finishes those it holds; its status is draining until resumed. A NATS worker is told over NATS: 409 when it does not answer (gone). A worker over HTTP (kind http) is marked in its registry record, which every gateway reads: its lease calls answer 204 at once while its leases in hand keep working. 404 for an id the registry does not hold."
              : "The instance takes jobs again (a worker over HTTP: its lease calls serve jobs again). 409 when a NATS worker does not answer (gone), 404 for an id the registry does not hold.",
          params,
          response: { 200: WorkerInstance, ...errorResponses(...adminErrors, 404, 409) },
        },
      },
      async (req) => workers.control(req.params.id, action),
    );
  }
}
