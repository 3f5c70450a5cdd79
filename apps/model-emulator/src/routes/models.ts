import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { findModel, MODELS, type ModelSpec } from "../models.ts";
import { notFound } from "../problems.ts";

// Fixed, so that the same emulator answers the same: these are the emulator's, not the models' real dates.
const CREATED_AT = "2025-01-01T00:00:00.000Z";

function versionOf(spec: ModelSpec, id: string) {
  return {
    id,
    created_at: CREATED_AT,
    cog_version: "0.13.0",
    openapi_schema: {
      openapi: "3.0.2",
      info: { title: "Cog", version: "0.1.0" },
      components: { schemas: { Input: z.toJSONSchema(spec.input, { io: "input", unrepresentable: "any" }), Output: { title: "Output", ...spec.output } } },
    },
  };
}

function modelOf(spec: ModelSpec, base: string) {
  return {
    url: `${base}/v1/models/${spec.owner}/${spec.name}`,
    owner: spec.owner,
    name: spec.name,
    description: spec.description,
    visibility: "public",
    github_url: null,
    paper_url: null,
    license_url: null,
    run_count: 0,
    cover_image_url: null,
    default_example: null,
    latest_version: versionOf(spec, spec.versions[0]!),
  };
}

/** What the `replicate` client reads of models: one, all, and their versions (with each input's JSON Schema). */
export function modelRoutes(app: FastifyInstance, publicUrl: () => string) {
  const page = <T>(results: T[]) => ({ next: null, previous: null, results });
  const spec = (owner: string, name: string) => {
    const found = findModel(owner, name);
    if (!found) throw notFound(`Model ${owner}/${name} is not one the model emulator knows.`);
    return found;
  };

  app.get("/v1/models", async () => page(MODELS.map((m) => modelOf(m, publicUrl()))));
  app.get<{ Params: { owner: string; name: string } }>("/v1/models/:owner/:name", async (req) => modelOf(spec(req.params.owner, req.params.name), publicUrl()));
  app.get<{ Params: { owner: string; name: string } }>("/v1/models/:owner/:name/versions", async (req) => {
    const m = spec(req.params.owner, req.params.name);
    return page(m.versions.map((v) => versionOf(m, v)));
  });
  app.get<{ Params: { owner: string; name: string; id: string } }>("/v1/models/:owner/:name/versions/:id", async (req) => {
    const m = spec(req.params.owner, req.params.name);
    if (!m.versions.includes(req.params.id)) throw notFound(`Version ${req.params.id} of ${m.owner}/${m.name} does not exist.`);
    return versionOf(m, req.params.id);
  });
}
