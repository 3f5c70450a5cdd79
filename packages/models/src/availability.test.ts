import { describe, expect, it } from "vitest";
import { providerAvailability, runnableJobTypes, unavailableModel } from "./availability.ts";
import { defaultCatalog } from "./catalog.ts";
import { costUsd } from "./cost.ts";

describe("provider availability", () => {
  it("is Replicate with a token, the emulator with only its URL, none without either", () => {
    expect(providerAvailability({ REPLICATE_API_TOKEN: "r8_x", MODEL_EMULATOR_URL: "http://127.0.0.1:8004" })).toBe("replicate");
    expect(providerAvailability({ MODEL_EMULATOR_URL: "http://127.0.0.1:8004" })).toBe("emulator");
    expect(providerAvailability({ REPLICATE_API_TOKEN: " " })).toBe("none");
    expect(providerAvailability({})).toBe("none");
  });

  it("takes MODEL_PROVIDER as said by the stack, for processes without the token", () => {
    expect(providerAvailability({ MODEL_PROVIDER: "emulator" })).toBe("emulator");
    expect(providerAvailability({ MODEL_PROVIDER: "none", REPLICATE_API_TOKEN: "r8_x" })).toBe("none");
    expect(() => providerAvailability({ MODEL_PROVIDER: "openai" })).toThrow();
  });

  it("runs local engines without a provider, and nothing hosted", () => {
    const catalog = defaultCatalog();
    expect(unavailableModel(catalog, "none", [{ jobType: "audio.tts", quality: "standard" }])).toBeUndefined();
    expect(unavailableModel(catalog, "none", [{ jobType: "audio.tts", quality: "premium" }])?.reason).toMatch(/kokoro.*needs a model provider/);
    expect(unavailableModel(catalog, "none", [{ jobType: "image.generate", quality: "fast", variant: "flux" }])?.use.jobType).toBe("image.generate");
    expect(unavailableModel(catalog, "emulator", [{ jobType: "image.generate", quality: "fast", variant: "sdxl" }, { jobType: "prompt.enhance", quality: "fast" }])).toBeUndefined();
    expect(unavailableModel(catalog, "replicate", [{ jobType: "image.generate", quality: "ultra" }])?.reason).toMatch(/no model/);
    const runnable = runnableJobTypes(catalog, "none");
    expect(Object.keys(runnable).sort()).toEqual(["audio.tts", "image.remove-background", "text.script-analysis"]);
    expect(runnable["image.remove-background"]).toEqual(["green-screen"]);
    expect(runnableJobTypes(catalog, "emulator")["image.generate"]).toContain("sdxl:premium");
  });
});

describe("provider cost", () => {
  it("prices a run by its catalog price and usage", () => {
    expect(costUsd({ provider: "replicate", price: { usd_per_second: 0.000975 } }, { predict_time_s: 8 })).toBe(0.0078);
    expect(costUsd({ provider: "replicate", price: { usd_per_output: 0.003 } }, { outputs: 4, predict_time_s: 1 })).toBe(0.012);
    expect(costUsd({ provider: "replicate", price: { usd_per_output_second: 0.09 } }, { output_seconds: 5 })).toBe(0.45);
    expect(costUsd({ provider: "replicate", price: { usd_per_million_input_tokens: 0.05, usd_per_million_output_tokens: 0.25 } }, { input_tokens: 1000, output_tokens: 2000 })).toBe(0.00055);
    expect(costUsd({ provider: "local" }, {})).toBe(0);
  });

  it("is unknown when the provider did not report what the price needs", () => {
    expect(costUsd({ provider: "replicate", price: { usd_per_second: 0.001 } }, { outputs: 1 })).toBeNull();
    expect(costUsd({ provider: "replicate", price: { usd_per_million_input_tokens: 1, usd_per_million_output_tokens: 1 } }, {})).toBeNull();
  });
});
