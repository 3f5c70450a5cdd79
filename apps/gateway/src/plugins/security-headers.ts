import helmet from "@fastify/helmet";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";

/**
 * The docs UI's policy (set by @fastify/swagger-ui on its own routes): its scripts, styles and the
 * OpenAPI document all come from here. Not `upgrade-insecure-requests`, which would send a plain-HTTP
 * deployment's assets to https.
 */
export const docsCsp =
  "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; form-action 'self'; frame-ancestors 'self'; img-src 'self' data: validator.swagger.io; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'";

/** helmet's headers on every answer, with a policy for an API that serves JSON and no pages. */
export const securityHeadersPlugin = fp(async (app: FastifyInstance) => {
  await app.register(helmet, {
    // Nothing an answer holds may load anything or be framed; /docs replaces this with docsCsp.
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] } },
    // Pages on other origins (CORS_ORIGINS) show signed downloads in <img>/<video>, which same-origin would block.
    crossOriginResourcePolicy: { policy: "cross-origin" },
  });
});

/** For answers that carry tokens or signed URLs: no browser or proxy cache may keep them. */
export async function noStore(_req: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header("cache-control", "no-store");
}
