import { AppError } from "@cutroom/contracts";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

/** Deeper than any body of ours needs; deep enough nesting otherwise exhausts a parser's stack downstream. */
export const MAX_JSON_DEPTH = 32;

/**
 * Where a parsed JSON value breaks what every service can store: nesting deeper than `maxDepth`,
 * or a NUL character (Postgres text and jsonb cannot hold one). Iterative, so depth costs no stack.
 */
export function jsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): string | undefined {
  const stack: Array<{ v: unknown; path: string; depth: number }> = [{ v: value, path: "body", depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    if (typeof v === "string") {
      if (v.includes("\0")) return `${path} contains a NUL character`;
    } else if (v !== null && typeof v === "object") {
      if (depth >= maxDepth) return `${path} is nested more than ${maxDepth} levels deep`;
      for (const [k, child] of Object.entries(v)) {
        if (k.includes("\0")) return `${path} has a key with a NUL character`;
        stack.push({ v: child, path: Array.isArray(v) ? `${path}[${k}]` : `${path}.${k}`, depth: depth + 1 });
      }
    }
  }
  return undefined;
}

/** JSON bodies parsed as Fastify does (prototype poisoning refused), then checked by `jsonProblem`: 400 in the envelope. */
export const jsonBodyPlugin = fp(async (app: FastifyInstance) => {
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    parse(req, body as string, (err, value) => {
      if (err) return done(err);
      const problem = jsonProblem(value);
      done(problem ? new AppError("BAD_REQUEST", problem) : null, value);
    });
  });
  // A POST with no body and no content type (curl -XPOST, fetch without a body) reaches validation as
  // null, which no object schema takes, so a route whose body is optional refused it: validate it as {}.
  app.addHook("preValidation", async (req) => {
    if (req.body == null && req.headers["content-type"] === undefined) req.body = {};
  });
  // The same for a NUL in the URL: a %00 in a query or path parameter would reach Postgres as one.
  app.addHook("onRequest", async (req) => {
    if (req.url.includes("%00")) throw new AppError("BAD_REQUEST", "the URL contains a NUL character (%00)");
  });
});
