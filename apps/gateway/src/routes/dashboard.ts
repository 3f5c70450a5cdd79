import { AppError } from "@cutroom/contracts";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply } from "fastify";
import { statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

/**
 * The dashboard's policy, in place of the API's `default-src 'none'`: its own scripts, styles and
 * API calls (WebSockets included: CSP3's 'self' covers ws: to the same host), and media from any
 * http(s) origin, since signed download URLs may point at an S3 host.
 */
export const dashboardCsp =
  "default-src 'self'; base-uri 'none'; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; img-src 'self' data: blob: http: https:; media-src 'self' blob: http: https:; object-src 'none'; script-src 'self'; style-src 'self'";

const notBuilt = () =>
  new AppError("SERVICE_UNAVAILABLE", "the dashboard is not built: run `npm run build -w @cutroom/dashboard` (npm start and npm test build it when it is missing or stale), or point DASHBOARD_DIR at a build");

const isFile = (path: string) => statSync(path, { throwIfNoEntry: false })?.isFile() === true;

/**
 * The built dashboard (apps/dashboard) at /dashboard: its files, and index.html for any other path
 * under it, so the app's own routes survive a reload. Looked up per request, so a build made while
 * the gateway runs is served without a restart.
 */
export async function dashboardRoutes(app: FastifyInstance, { dir }: { dir: string }) {
  const root = resolve(dir);
  // serve: false: only reply.sendFile, for the routes below; the build may not exist yet.
  await app.register(fastifyStatic, { root, serve: false, suppressWarning: true });
  app.addHook("onRequest", async (_req, reply) => {
    reply.header("content-security-policy", dashboardCsp);
  });

  const sendIndex = (reply: FastifyReply) => {
    if (!isFile(join(root, "index.html"))) throw notBuilt();
    // Always revalidated: it names the current hashed assets.
    return reply.header("cache-control", "no-cache").sendFile("index.html", { cacheControl: false });
  };

  app.get("/dashboard", { schema: { hide: true } }, async (_req, reply) => sendIndex(reply));
  app.get<{ Params: { "*": string } }>("/dashboard/*", { schema: { hide: true } }, async (req, reply) => {
    const wanted = resolve(root, req.params["*"]);
    const rel = relative(root, wanted);
    const inside = rel !== "" && !rel.startsWith("..") && !rel.includes(`..${sep}`);
    if (inside && isFile(wanted)) {
      // Vite names assets by their content hash: they never change under the same name.
      const hashed = rel.startsWith(`assets${sep}`);
      return reply.sendFile(rel, hashed ? { maxAge: "365d", immutable: true } : { maxAge: 0 });
    }
    if (rel.startsWith(`assets${sep}`)) throw new AppError("NOT_FOUND", `no such dashboard file: ${req.params["*"]}`);
    return sendIndex(reply);
  });
}
