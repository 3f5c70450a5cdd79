import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import helmet from "helmet";

/**
 * The docs UI's policy (set by @fastify/swagger-ui on its own routes): its scripts, styles and the
 * OpenAPI document all come from here. Not `upgrade-insecure-requests`, which would send a plain-HTTP
 * deployment's assets to https.
 */
export const docsCsp =
  "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; form-action 'self'; frame-ancestors 'self'; img-src 'self' data: validator.swagger.io; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'";

/** The headers helmet's middleware sets with these options, read once from a stand-in response. */
function helmetHeaders(options: Parameters<typeof helmet>[0]): Record<string, string> {
  const headers: Record<string, string> = {};
  const res = { setHeader: (name: string, value: string) => void (headers[name.toLowerCase()] = String(value)), removeHeader: () => {} };
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
  });
  return headers;
}

/**
 * helmet's headers on every answer, with a policy for an API that serves JSON and no pages. They are
 * the same for every answer, so they are worked out once: @fastify/helmet ran helmet's middleware
 * per request, parsing the policy each time (7% of the gateway's CPU in job creation, ADR 034).
 */
export const securityHeadersPlugin = fp(async (app: FastifyInstance) => {
  const headers = helmetHeaders({
    // Nothing an answer holds may load anything or be framed; /docs replaces this with docsCsp.
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] } },
    // Pages on other origins (CORS_ORIGINS) show signed downloads in <img>/<video>, which same-origin would block.
    crossOriginResourcePolicy: { policy: "cross-origin" },
  });
  app.addHook("onRequest", (_req, reply, done) => {
    reply.headers(headers);
    done();
  });
});

/** For answers that carry tokens or signed URLs: no browser or proxy cache may keep them. */
export async function noStore(_req: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header("cache-control", "no-store");
}
