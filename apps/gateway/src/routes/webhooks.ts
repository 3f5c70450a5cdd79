import { createHmac, timingSafeEqual } from "node:crypto";
import { AppError, subjects } from "@cutroom/contracts";
import type { NatsConnection } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { errorResponses, publicRoute } from "../plugins/openapi.ts";

/** Older or newer webhooks than this are refused: a captured one cannot be replayed later. */
const TOLERANCE_S = 5 * 60;
// Replicate's prediction ids are lower-case base32; anything else could not be a NATS subject token.
const PredictionId = z.string().regex(/^[a-z0-9]{1,64}$/i);
const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Replicate's (Standard Webhooks) signature: `webhook-signature` holds space-separated `v1,<base64>`
 * HMAC-SHA256 values of `<webhook-id>.<webhook-timestamp>.<body>`, keyed by the secret after `whsec_`.
 */
export function verifyWebhookSignature(headers: { id?: string; timestamp?: string; signature?: string }, body: string, secret: string, nowS = Date.now() / 1000): boolean {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(nowS - Number(timestamp)) > TOLERANCE_S) return false;
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret, "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest();
  return signature.split(" ").some((part) => {
    const [version, value] = part.split(",");
    if (version !== "v1" || !value) return false;
    const given = Buffer.from(value, "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/**
 * `POST /api/v1/webhooks/replicate`: a prediction changed. The signature is checked with
 * REPLICATE_WEBHOOK_SECRET, then the prediction's id is relayed on NATS, where the worker waiting on
 * it wakes and reads the prediction from the provider itself: the body is never trusted further.
 */
export async function webhookRoutes(base: FastifyInstance, { nc, webhookSecret }: { nc: NatsConnection; webhookSecret?: string }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  // The signature covers the bytes as sent: this route keeps the body as a string.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string", bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));

  app.post(
    "/webhooks/replicate",
    {
      schema: {
        tags: ["webhooks"],
        operationId: "receiveReplicateWebhook",
        summary: "Replicate's prediction webhooks (signed): wake the worker waiting on the prediction",
        description: "Called by Replicate (or the model emulator), never by clients. 401 unless the `webhook-*` headers carry a valid signature made with REPLICATE_WEBHOOK_SECRET within 5 minutes; 404 when no secret is configured.",
        ...publicRoute,
        response: { 200: z.object({ received: z.literal(true) }), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      if (!webhookSecret) throw new AppError("NOT_FOUND", "model webhooks are not configured here (REPLICATE_WEBHOOK_SECRET)");
      const body = typeof req.body === "string" ? req.body : "";
      const header = (name: string) => (typeof req.headers[name] === "string" ? (req.headers[name] as string) : undefined);
      const signed = verifyWebhookSignature({ id: header("webhook-id"), timestamp: header("webhook-timestamp"), signature: header("webhook-signature") }, body, webhookSecret);
      if (!signed) throw new AppError("UNAUTHORIZED", "the webhook signature is missing, wrong or too old");
      let id: string;
      try {
        id = PredictionId.parse((JSON.parse(body) as { id?: unknown }).id);
      } catch {
        throw new AppError("BAD_REQUEST", "the webhook body is not a prediction");
      }
      nc.publish(subjects.modelWebhook(id), JSON.stringify({ id }));
      return { received: true as const };
    },
  );
}
