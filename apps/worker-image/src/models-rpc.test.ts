import { createLogger } from "@cutroom/runtime";
import { noModels, ProviderError, type ModelProvider, type ModelService } from "@cutroom/worker-runtime";
import { describe, expect, it } from "vitest";
import { createModelsHandlers } from "./models-rpc.ts";

const ctx = { requestId: "r1", caller: null, log: createLogger("test", "silent") };
const body = { prompt: "a lighthouse", job_type: "image.generate" as const, quality: "fast" as const, timeout_ms: 5000 };

function withProvider(run: ModelProvider["run"]): ModelService {
  return { ...noModels(), provider: "replicate", client: { name: "replicate", synthetic: false, run } };
}

describe("svc.models.enhancePrompt on worker-image", () => {
  it("answers the enhanced prompt with the run's provider record", async () => {
    const service = withProvider(async () => ({ id: "p1", status: "succeeded", output: ["a lighthouse", " at dusk,", " soft light"], metrics: { predict_time: 0.5, input_token_count: 100, output_token_count: 8 } }));
    const out = await createModelsHandlers(service).enhancePrompt(body, ctx);
    expect(out).toMatchObject({ enhanced_prompt: "a lighthouse at dusk, soft light", strategy: "flux-descriptive", family: "flux", token_budget: 256 });
    expect(out.provider).toMatchObject({ name: "replicate", model: "meta/meta-llama-3-8b-instruct", prediction_id: "p1", predict_time_s: 0.5, synthetic: false });
    expect(out.provider.cost_usd).toBeCloseTo((100 * 0.05 + 8 * 0.25) / 1e6, 9);
  });

  it("answers 503 PROVIDER_UNAVAILABLE on a worker with no provider", async () => {
    await expect(createModelsHandlers(noModels()).enhancePrompt(body, ctx)).rejects.toMatchObject({ code: "PROVIDER_UNAVAILABLE", status: 503 });
  });

  it("answers 502 PROVIDER_ERROR when the prediction fails or the provider is out, without retrying (the client waits)", async () => {
    let calls = 0;
    const failed = withProvider(async () => {
      calls++;
      throw new ProviderError("the prediction failed: CUDA out of memory", false);
    });
    await expect(createModelsHandlers(failed).enhancePrompt(body, ctx)).rejects.toMatchObject({ code: "PROVIDER_ERROR", status: 502, message: expect.stringMatching(/CUDA/) });
    const outage = withProvider(async () => {
      calls++;
      throw new ProviderError("HTTP 503", true);
    });
    await expect(createModelsHandlers(outage).enhancePrompt(body, ctx)).rejects.toMatchObject({ code: "PROVIDER_ERROR", status: 502 });
    expect(calls).toBe(2);
  });

  it("gives up before the caller does, canceling the prediction, and says it timed out", async () => {
    let canceled = false;
    const slow = withProvider(
      (_model, _input, opts) =>
        new Promise((_resolve, reject) => {
          opts.signal.addEventListener("abort", () => {
            canceled = true;
            reject(opts.signal.reason);
          });
        }),
    );
    const started = Date.now();
    await expect(createModelsHandlers(slow).enhancePrompt({ ...body, timeout_ms: 1600 }, ctx)).rejects.toMatchObject({ code: "PROVIDER_ERROR", message: expect.stringMatching(/did not answer within/) });
    expect(canceled).toBe(true);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
