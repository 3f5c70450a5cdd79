import { tmpdir } from "node:os";
import { AppError, isAppError } from "@cutroom/contracts";
import { serveRpc, type Logger, type NatsConnection, type RpcHandlers } from "@cutroom/runtime";
import { createJobModels, enhancePromptDetailed, isJobFailure, RetryableFailure, type ModelService } from "@cutroom/worker-runtime";

/** The prediction is given up this much before the caller stops waiting, so the caller hears why. */
const ANSWER_MARGIN_MS = 1000;

/**
 * A failure of a synchronous model call as the caller's error: no provider 503, the provider failing
 * (or timing out, or out of service) 502 PROVIDER_ERROR, since the client waits on it and retries itself.
 */
export function asCallError(err: unknown, timedOut: boolean, timeoutMs: number): AppError {
  if (timedOut) return new AppError("PROVIDER_ERROR", `the model provider did not answer within ${Math.round(timeoutMs / 1000)} s`);
  if (isAppError(err)) return err;
  if (isJobFailure(err) || err instanceof RetryableFailure) {
    // A quality the operator's catalog removed is a model this server cannot run, as job-service counts it.
    if (err.code === "PROVIDER_UNAVAILABLE" || err.code === "INVALID_INPUT") return new AppError("PROVIDER_UNAVAILABLE", err.message);
    return new AppError("PROVIDER_ERROR", err.message);
  }
  throw err;
}

/**
 * `svc.models.*`: synchronous model calls, answered by this worker because it holds the provider
 * token. Each call runs like a job's model run (catalog, provider, cancel upstream when given up)
 * without a job: no progress, no files.
 */
export function createModelsHandlers(service: ModelService): RpcHandlers<"models"> {
  return {
    enhancePrompt: async ({ timeout_ms, ...body }, ctx) => {
      if (!service.client) {
        throw new AppError("PROVIDER_UNAVAILABLE", "no model provider serves prompt enhancement here (set REPLICATE_API_TOKEN, or MODEL_EMULATOR_URL for the emulator)", {
          provider: service.provider,
        });
      }
      const controller = new AbortController();
      const budgetMs = Math.max(500, timeout_ms - ANSWER_MARGIN_MS);
      const timer = setTimeout(() => controller.abort(new Error("timed out")), budgetMs);
      const models = createJobModels({
        service,
        tmpDir: tmpdir(),
        signal: controller.signal,
        progress: () => {},
        uploadOutput: async () => {
          throw new Error("a synchronous model call keeps no files");
        },
        log: { info: (message) => ctx.log.info(message) },
      });
      try {
        return await enhancePromptDetailed(models, body);
      } catch (err) {
        throw asCallError(err, controller.signal.aborted, budgetMs);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Serves the models methods on this worker's NATS connection (a queue group: any worker-image replica answers). */
export function serveModels({ nc, models, log }: { nc: NatsConnection; models: ModelService; log: Logger }) {
  return serveRpc(nc, "models", createModelsHandlers(models), log);
}
