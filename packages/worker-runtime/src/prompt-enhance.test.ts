import { countPromptTokens } from "@cutroom/contracts";
import { describe, expect, it } from "vitest";
import type { JobModels, ModelRunRequest } from "./models.ts";
import { cleanEnhancedPrompt, enhancePrompt, enhancePromptDetailed } from "./prompt-enhance.ts";

/** ctx.models with a language model that answers `answer` and records what it was asked. */
function languageModel(answer: string) {
  const asked: ModelRunRequest[] = [];
  const models = {
    predict: async (req: ModelRunRequest) => {
      asked.push(req);
      const model = req.quality === "high" || req.quality === "premium" ? "meta/meta-llama-3-70b-instruct" : "meta/meta-llama-3-8b-instruct";
      return {
        output: answer.split(" "),
        text: answer,
        downloads: [],
        model: { model },
        provider: { name: "emulator", model, prediction_id: "p1", predict_time_s: 0.4, cost_usd: 0, list_price_usd: 0.00001, synthetic: true },
      };
    },
  } as unknown as JobModels;
  return { models, asked };
}

describe("prompt enhancement", () => {
  it("asks the catalog's language model at the quality given, the prompt quoted first, the strategy and presets after", async () => {
    const { models, asked } = languageModel("a lighthouse at dusk, dramatic clouds, golden light");
    const out = await enhancePromptDetailed(models, { prompt: 'a "lighthouse"', job_type: "image.generate", family: "sdxl", quality: "high", presets: ["cinematic", "oil painting"] });
    expect(asked[0]).toMatchObject({ jobType: "prompt.enhance", quality: "high", output: "text" });
    const ask = asked[0]!.input.prompt as string;
    expect(ask.startsWith(`Prompt: "a 'lighthouse'"`)).toBe(true);
    expect(ask).toContain("comma-separated visual keywords");
    expect(ask).toContain("Work in these styles: cinematic, oil painting.");
    expect(out).toMatchObject({
      original_prompt: 'a "lighthouse"',
      enhanced_prompt: "a lighthouse at dusk, dramatic clouds, golden light",
      strategy: "sdxl-keywords",
      family: "sdxl",
      quality: "high",
      presets: ["cinematic", "oil painting"],
      model: "meta/meta-llama-3-70b-instruct",
      token_budget: 77,
      compression_applied: false,
      provider: { name: "emulator", synthetic: true },
    });
    expect(out.token_count).toBe(countPromptTokens(out.enhanced_prompt));
  });

  it("cuts an answer over the target's budget at a word boundary, and says so", async () => {
    const { models } = languageModel(Array.from({ length: 200 }, (_, i) => `w${i}`).join(" ")) // 200 tokens;
    const sdxl = await enhancePromptDetailed(models, { prompt: "a fox", job_type: "image.generate", family: "sdxl", quality: "fast" });
    expect(sdxl.compression_applied).toBe(true);
    expect(sdxl.token_count).toBeLessThanOrEqual(77);
    const wanFast = await enhancePromptDetailed(models, { prompt: "a fox", job_type: "video.generate", quality: "fast" });
    const wanHigh = await enhancePromptDetailed(models, { prompt: "a fox", job_type: "video.generate", quality: "premium" });
    expect([wanFast.family, wanFast.strategy, wanFast.token_budget, wanFast.compression_applied]).toEqual(["wan", "wan-motion", 175, true]);
    expect([wanHigh.strategy, wanHigh.token_budget, wanHigh.compression_applied]).toEqual(["wan-cinematic", 250, false]);
    expect(wanFast.token_count).toBeLessThanOrEqual(175);
  });

  it("drops a preamble, quotes and anything after the first paragraph", () => {
    expect(cleanEnhancedPrompt('Here is the rewritten prompt:\n\n"A fox in snow, soft light."\n\nThis adds mood.')).toBe("A fox in snow, soft light.");
    expect(cleanEnhancedPrompt("Sure! Here's your prompt:\nA fox\nin snow")).toBe("A fox in snow");
    expect(cleanEnhancedPrompt("“A fox”")).toBe("A fox");
    expect(cleanEnhancedPrompt("  \n ")).toBe("");
  });

  it("fails PROVIDER_ERROR on an answer with no prompt, while a job's enhancement keeps the prompt as it was", async () => {
    const { models } = languageModel("Here is the prompt:");
    await expect(enhancePromptDetailed(models, { prompt: "a fox", job_type: "image.generate", quality: "fast" })).rejects.toMatchObject({ code: "PROVIDER_ERROR" });
    expect(await enhancePrompt(models, { prompt: "a fox", family: "flux", medium: "image" })).toBe("a fox");
  });
});
