import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { findModel, findVersion, type ModelSpec } from "../models.ts";
import type { PredictionService } from "../predictions.ts";
import { invalid, notFound, ProblemError } from "../problems.ts";
import { WEBHOOK_EVENTS } from "../webhooks.ts";

const CreateBody = z.object({
  input: z.record(z.string(), z.unknown(), { error: "input is required: an object of the model's inputs" }),
  webhook: z.url({ protocol: /^https?$/, error: "webhook must be an http(s) URL" }).optional(),
  webhook_events_filter: z.array(z.enum(WEBHOOK_EVENTS)).optional(),
  stream: z.boolean().optional(),
});
const VersionBody = CreateBody.extend({ version: z.string({ error: "version is required" }).min(1) });

// Replicate holds a `Prefer: wait` request at most 60 s.
const MAX_WAIT_S = 60;

/** Seconds to hold the reply for `Prefer: wait` or `wait=n`; 0 without the header. */
function preferWait(req: FastifyRequest): number {
  const m = /(?:^|[,;\s])wait(?:=(\d+))?(?:$|[,;\s])/.exec(String(req.headers.prefer ?? ""));
  if (!m) return 0;
  return Math.min(MAX_WAIT_S, m[1] ? Number(m[1]) : MAX_WAIT_S);
}

function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) throw invalid("Invalid request", parsed.error.issues.map((i) => `- ${i.path.join(".") || "body"}: ${i.message}`).join("\n"));
  return parsed.data;
}

function parseInput(spec: ModelSpec, input: Record<string, unknown>): Record<string, unknown> {
  const parsed = spec.input.safeParse(input);
  if (parsed.success) return parsed.data as Record<string, unknown>;
  const fields = parsed.error.issues.map((i) => {
    const field = ["input", ...i.path.map(String)].join(".");
    const missing = i.code === "invalid_type" && i.path.length === 1 && input[String(i.path[0])] === undefined;
    return { type: missing ? "required" : i.code, field, description: missing ? `${String(i.path[0])} is required` : i.message };
  });
  throw invalid("Input validation failed", fields.map((f) => `- ${f.field}: ${f.description}`).join("\n"), fields);
}

/**
 * `[emulator:unavailable:N:<tag>]` in an input: the first N creations carrying that very marker answer
 * 503, the next ones run, so a test sees a provider outage that retries outlast (ADR 039).
 */
const UNAVAILABLE_MARKER = /\[emulator:unavailable:(\d+)(?::[^\]]*)?\]/;

/** Predictions: create (by model or by version), get, cancel, list; and the webhook signing secret. */
export function predictionRoutes(app: FastifyInstance, predictions: PredictionService, publicUrl: () => string, webhookSecret: string) {
  const refused = new Map<string, number>();
  const create = async (req: FastifyRequest, spec: ModelSpec, version: string, body: z.output<typeof CreateBody>) => {
    const outage = UNAVAILABLE_MARKER.exec(JSON.stringify(body.input));
    if (outage) {
      const seen = refused.get(outage[0]) ?? 0;
      if (seen < Number(outage[1])) {
        refused.set(outage[0], seen + 1);
        throw new ProblemError({ status: 503, title: "Service unavailable", detail: `emulated outage ${seen + 1} of ${outage[1]} (${outage[0]})` });
      }
    }
    const parsed = parseInput(spec, body.input);
    const webhook = body.webhook ? { url: body.webhook, events: body.webhook_events_filter } : undefined;
    const p = predictions.create(spec, version, body.input, parsed, webhook);
    const wait = preferWait(req);
    if (wait > 0) await predictions.waitFor(p.id, wait * 1000);
    return p;
  };

  app.post<{ Params: { owner: string; name: string } }>("/v1/models/:owner/:name/predictions", async (req, reply) => {
    const spec = findModel(req.params.owner, req.params.name);
    if (!spec) throw notFound(`Model ${req.params.owner}/${req.params.name} is not one the model emulator knows.`);
    const body = parseBody(CreateBody, req.body);
    return reply.code(201).send(await create(req, spec, spec.versions[0]!, body));
  });

  app.post("/v1/predictions", async (req, reply) => {
    const body = parseBody(VersionBody, req.body);
    // "owner/name:hash", "owner/name" or a bare hash (what the client sends for `owner/name:hash`).
    const m = /^([^/:\s]+)\/([^/:\s]+)(?::(\w+))?$/.exec(body.version);
    const named = m ? findModel(m[1]!, m[2]!) : undefined;
    const spec = named ?? findVersion(body.version);
    if (!spec || (named && m?.[3] && !named.versions.includes(m[3]))) {
      throw invalid("Invalid version or not permitted", `The specified version ${body.version} does not exist in the model emulator (or perhaps you don't have permission to use it?)`);
    }
    const version = m?.[3] ?? (named ? spec.versions[0]! : body.version);
    return reply.code(201).send(await create(req, spec, version, body));
  });

  app.get<{ Params: { id: string } }>("/v1/predictions/:id", async (req) => {
    const p = predictions.get(req.params.id);
    if (!p) throw notFound(`Prediction ${req.params.id} not found.`);
    return p;
  });

  app.post<{ Params: { id: string } }>("/v1/predictions/:id/cancel", async (req) => {
    const p = predictions.cancel(req.params.id);
    if (!p) throw notFound(`Prediction ${req.params.id} not found.`);
    return p;
  });

  app.get<{ Querystring: { cursor?: string } }>("/v1/predictions", async (req) => {
    const { results, nextCursor } = predictions.list(req.query.cursor);
    return { next: nextCursor ? `${publicUrl()}/v1/predictions?cursor=${nextCursor}` : null, previous: null, results };
  });

  app.get("/v1/webhooks/default/secret", async () => ({ key: webhookSecret }));
}
