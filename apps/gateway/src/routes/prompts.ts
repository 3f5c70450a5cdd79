import { AppError, EnhancedPrompt, EnhancePromptBody } from "@cutroom/contracts";
import { unavailableModel } from "@cutroom/models";
import { createRpcClient, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { callCtx } from "../context.ts";
import { noGatewayModels, type GatewayModels } from "../models.ts";
import { authErrors, bodyErrors, errorResponses } from "../plugins/openapi.ts";
import { setRateHeaders } from "./jobs.ts";

export interface PromptRoutesOptions {
  rpc: RpcClient;
  nc: NatsConnection;
  models?: GatewayModels;
  /** How long a client waits for the language model (PROMPT_ENHANCE_TIMEOUT_MS). */
  promptEnhanceTimeoutMs?: number;
}

/**
 * POST /prompts/enhance (seed 001): synchronous, since a client waits on it before it generates.
 * The gateway refuses what no provider can serve (503) and counts the caller's per-minute bucket
 * (429); worker-image, which holds the provider token, answers `svc.models.enhancePrompt`.
 */
export async function promptRoutes(base: FastifyInstance, { rpc, nc, models = noGatewayModels(), promptEnhanceTimeoutMs = 60_000 }: PromptRoutesOptions) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  // A language model takes seconds, well past an ordinary service call: this call has a client with its own timeout.
  const modelRpc = createRpcClient(nc, { timeoutMs: promptEnhanceTimeoutMs });

  app.post(
    "/prompts/enhance",
    {
      onRequest: app.authenticate,
      schema: {
        tags: ["prompts"],
        operationId: "enhancePrompt",
        summary: "Rewrite a prompt for an image or video model (synchronous)",
        description:
          "A language model rewrites the prompt for the target job and model family within its token budget (sdxl 77, wan 175 at fast and 250 at high quality, flux 256 or 512), optionally in the styles of `presets`. Limited per tier per minute (30 on free; X-RateLimit-* headers). 503 PROVIDER_UNAVAILABLE when no model provider serves; 502 PROVIDER_ERROR when the provider fails or does not answer in time.",
        body: EnhancePromptBody,
        response: { 200: EnhancedPrompt, ...errorResponses(...authErrors, ...bodyErrors, 429, 502) },
      },
    },
    async (req, reply) => {
      const caller = req.caller!;
      // Before the rate slot: a server that cannot enhance at all says so, and takes nothing.
      const missing = unavailableModel(models.catalog, models.provider, [{ jobType: "prompt.enhance", quality: req.body.quality }]);
      if (missing) {
        throw new AppError("PROVIDER_UNAVAILABLE", `no model provider serves prompt enhancement here: ${missing.reason}`, { provider: models.provider, quality: req.body.quality });
      }
      const rate = await rpc.call("billing", "rate", { user_id: caller.user_id, tier: caller.tier, bucket: "prompts.enhance" }, callCtx(req));
      if (!rate.allowed) {
        throw new AppError("RATE_LIMITED", `the ${caller.tier} tier allows ${rate.limit} prompt enhancements per minute`, { limit: rate.limit, remaining: 0, reset: rate.reset });
      }
      setRateHeaders(reply, rate);
      return modelRpc.call("models", "enhancePrompt", { ...req.body, timeout_ms: promptEnhanceTimeoutMs }, callCtx(req));
    },
  );
}
