import { ErrorEnvelope } from "@cutroom/contracts";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { jsonSchemaTransform, jsonSchemaTransformObject } from "fastify-type-provider-zod";
import { docsCsp } from "./security-headers.ts";

const errorDescriptions = {
  400: "The body could not be parsed",
  401: "No valid access token (or wrong credentials)",
  402: "Not enough credits",
  403: "Not allowed for this account",
  404: "No such resource, or not the caller's",
  409: "Conflicts with the resource's current state",
  413: "The body or file is too large",
  415: "The content type is not accepted, or the bytes are not of the declared type",
  422: "The input failed validation; details.fields lists each problem",
  429: "Rate limit reached; retry after the Retry-After header's seconds",
  502: "The model provider failed or did not answer in time (PROVIDER_ERROR)",
  503: "A service behind the gateway is unavailable, or no model provider serves (PROVIDER_UNAVAILABLE)",
} as const;
export type ErrorStatus = keyof typeof errorDescriptions;

/** The error answers a route can give, each the one envelope, for its schema's `response`. */
export function errorResponses<S extends ErrorStatus>(...statuses: S[]) {
  const responses = {} as Record<S, { description: string; content: { "application/json": { schema: typeof ErrorEnvelope } } }>;
  for (const s of statuses) responses[s] = { description: errorDescriptions[s], content: { "application/json": { schema: ErrorEnvelope } } };
  return responses;
}

/** Errors every authenticated route can answer: no token, or a service that does not answer. */
export const authErrors = [401, 503] as const;
/** Errors of a route that parses a JSON (or form) body. */
export const bodyErrors = [400, 413, 415, 422] as const;

/** Public operations say so: the document's default is a bearer token. */
export const publicRoute = { security: [] };

// Request schemas that validate one way and are documented another (see documentedAs).
const documentation = new WeakMap<object, object>();

/**
 * Documents a route's body as `shown` while `validating` still checks requests, so the errors stay
 * what they are; e.g. POST /jobs is shown as one schema per job type (CreateJobRequest).
 */
export function documentedAs<T extends object>(validating: T, shown: object): T {
  documentation.set(validating, shown);
  return validating;
}

const transform: typeof jsonSchemaTransform = (route) => {
  const body = route.schema?.body as object | undefined;
  const shown = body && documentation.get(body);
  return jsonSchemaTransform(shown ? { ...route, schema: { ...route.schema, body: shown } } : route);
};

/** OpenAPI 3.1 generated from the same zod schemas that validate requests; UI at /docs. */
export const openapiPlugin = fp(async (app: FastifyInstance) => {
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Cutroom API",
        version: "1.0.0",
        description: "Accounts, uploads, jobs with live progress, credits. Errors: {error: {code, message, details?, request_id}}.",
        license: { name: "Apache-2.0", identifier: "Apache-2.0" },
      },
      // Relative: the document describes the server it is fetched from.
      servers: [{ url: "/" }],
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
          // For clients that cannot set headers: a browser's EventSource and WebSocket.
          accessTokenQuery: { type: "apiKey", in: "query", name: "access_token" },
        },
      },
      security: [{ bearer: [] }],
    },
    transform,
    transformObject: (document) => withDeepObjectQueries(withDiscriminatorMappings(withoutUnusedSchemas(jsonSchemaTransformObject(document)))),
  });
  await app.register(swaggerUi, { routePrefix: "/docs", staticCSP: docsCsp });
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
});

type OpenApiDocument = ReturnType<typeof jsonSchemaTransformObject>;

/** A query parameter that is an object (GET /jobs's metadata) is sent as `name[key]=value`: OpenAPI's deepObject style. */
function withDeepObjectQueries(document: OpenApiDocument): OpenApiDocument {
  for (const item of Object.values((document as { paths?: Record<string, Record<string, { parameters?: { in: string; schema?: { type?: unknown } ; style?: string; explode?: boolean }[] }>> }).paths ?? {})) {
    for (const operation of Object.values(item)) {
      for (const param of operation?.parameters ?? []) {
        if (param.in === "query" && param.schema?.type === "object") Object.assign(param, { style: "deepObject", explode: true });
      }
    }
  }
  return document;
}

/**
 * jsonSchemaTransformObject puts every schema with an id in both an input and an output form
 * (`Job` and `JobInput`); only those the operations reach are kept, so the document has none unused.
 */
function withoutUnusedSchemas(document: OpenApiDocument): OpenApiDocument {
  if (!("components" in document) || !document.components?.schemas) return document;
  const { components, ...rest } = document;
  // A fresh object made by jsonSchemaTransformObject for this document: pruned in place.
  const schemas: Record<string, unknown> = components.schemas!;
  const refsIn = (value: unknown) => [...JSON.stringify(value).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map((m) => decodeURIComponent(m[1]!));
  const used = new Set<string>();
  const pending = refsIn(rest);
  while (pending.length) {
    const name = pending.pop()!;
    if (used.has(name) || !(name in schemas)) continue;
    used.add(name);
    pending.push(...refsIn(schemas[name]));
  }
  for (const name of Object.keys(schemas)) if (!used.has(name)) delete schemas[name];
  return document;
}

/**
 * zod writes a discriminated union's `discriminator` without a `mapping`; OpenAPI needs one when
 * the component names are not the discriminator's values (`CreateImageResizeJobInput` for
 * `image.resize`), so it is filled in from each member's constant.
 */
function withDiscriminatorMappings(document: OpenApiDocument): OpenApiDocument {
  const schemas = ("components" in document && document.components?.schemas) || {};
  const component = (ref: string) => (schemas as Record<string, { properties?: Record<string, { const?: unknown }> }>)[decodeURIComponent(ref.replace("#/components/schemas/", ""))];
  const visit = (node: unknown) => {
    if (!node || typeof node !== "object") return;
    if (Array.isArray(node)) return node.forEach(visit);
    const s = node as { oneOf?: { $ref?: string }[]; discriminator?: { propertyName: string; mapping?: Record<string, string> } };
    if (s.discriminator && s.oneOf && !s.discriminator.mapping) {
      const mapping: Record<string, string> = {};
      for (const { $ref } of s.oneOf) {
        const value = $ref && component($ref)?.properties?.[s.discriminator.propertyName]?.const;
        if (typeof value === "string") mapping[value] = $ref!;
      }
      s.discriminator.mapping = mapping;
    }
    for (const child of Object.values(node)) visit(child);
  };
  visit(document);
  return document;
}
