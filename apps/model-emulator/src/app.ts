import type { AddressInfo } from "node:net";
import type { Logger } from "@cutroom/runtime";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { MODELS } from "./models.ts";
import { createPredictionService, type PredictionServiceOptions } from "./predictions.ts";
import { notFound, ProblemError, sendProblem } from "./problems.ts";
import { fileRoutes } from "./routes/files.ts";
import { modelRoutes } from "./routes/models.ts";
import { predictionRoutes } from "./routes/predictions.ts";
import { createWebhookSender, publicSecret, webhookKey } from "./webhooks.ts";

export interface EmulatorDeps {
  log: Logger;
  /** Where outputs are kept (MODEL_EMULATOR_DIR). */
  dir: string;
  /** Base of output URLs (MODEL_EMULATOR_PUBLIC_URL); unset, the address the server listens on. */
  publicUrl?: string;
  /** `whsec_<base64>` (MODEL_EMULATOR_WEBHOOK_SECRET). */
  webhookSecret: string;
  concurrency?: number;
  retentionMs?: number;
  pageSize?: number;
  pace?: PredictionServiceOptions["pace"];
}

// Inputs may carry files inline as data: URIs; the client refuses more than 10 MB of them, base64 makes that 13.4.
const BODY_LIMIT = 20 * 1024 * 1024;

/** Replicate's HTTP API, as far as the `replicate` client uses it, over synthetic models. Knows nothing of Cutroom. */
export async function buildApp(deps: EmulatorDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.log as FastifyBaseLogger, bodyLimit: BODY_LIMIT });
  const publicUrl = () => {
    if (deps.publicUrl) return deps.publicUrl.replace(/\/+$/, "");
    const addr = app.server.address() as AddressInfo | null;
    if (!addr) throw new Error("the model emulator is not listening yet, and has no public URL");
    const host = addr.address === "0.0.0.0" || addr.address === "::" ? "127.0.0.1" : addr.address;
    return `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
  };
  const key = webhookKey(deps.webhookSecret);
  const webhooks = createWebhookSender({ key, log: deps.log });
  const predictions = createPredictionService({
    dir: deps.dir,
    publicUrl,
    webhooks,
    log: deps.log,
    concurrency: deps.concurrency ?? 4,
    retentionMs: deps.retentionMs ?? 60 * 60_000,
    pageSize: deps.pageSize,
    pace: deps.pace,
  });
  app.addHook("onClose", async () => {
    predictions.close();
    webhooks.close();
  });

  // The client sends `content-type: application/json` on a cancel, which has no body.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    if (body === "") return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new ProblemError({ status: 400, title: "Invalid JSON", detail: "The request body is not valid JSON." }), undefined);
    }
  });

  // Any non-empty bearer token is accepted: the emulator guards nothing, but a client without one is told, as by Replicate.
  app.addHook("onRequest", async (req, reply) => {
    if (!req.url.startsWith("/v1/")) return;
    if (/^Bearer\s+\S+/i.test(req.headers.authorization ?? "")) return;
    return sendProblem(reply, { status: 401, title: "Unauthenticated", detail: "You did not pass a valid authentication token" });
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ProblemError) return sendProblem(reply, err.problem);
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) return sendProblem(reply, { status, title: "Bad request", detail: (err as Error).message });
    req.log.error({ err }, "request failed");
    return sendProblem(reply, { status: 500, title: "Internal server error", detail: "The model emulator failed to answer." });
  });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, notFound(`No route ${req.method} ${req.url.split("?")[0]}`).problem));

  app.get("/health", async () => ({ status: "ok", synthetic: true, models: MODELS.map((m) => `${m.owner}/${m.name}`) }));
  modelRoutes(app, publicUrl);
  predictionRoutes(app, predictions, publicUrl, publicSecret(key));
  fileRoutes(app, deps.dir);
  return app;
}
