import { describe, expect, it } from "vitest";
import { modelStackEnv, modelsBanner } from "./models-env.ts";

describe("the model layer's settings for a stack", () => {
  it("uses the emulator without a token, with webhooks to the gateway signed by the key it shares", () => {
    const env = modelStackEnv({ emulatorUrl: "http://127.0.0.1:8004", webhookBaseUrl: "http://127.0.0.1:8000/", webhookSecret: "whsec_a2V5" });
    expect(env).toEqual({
      MODEL_PROVIDER: "emulator",
      REPLICATE_API_TOKEN: "",
      MODEL_EMULATOR_URL: "http://127.0.0.1:8004",
      MODEL_WEBHOOK_URL: "http://127.0.0.1:8000/api/v1/webhooks/replicate",
      REPLICATE_WEBHOOK_SECRET: "whsec_a2V5",
      MODEL_EMULATOR_WEBHOOK_SECRET: "whsec_a2V5",
    });
    expect(modelsBanner(env)).toBe("models: emulator (synthetic outputs) at http://127.0.0.1:8004; set REPLICATE_API_TOKEN for real models");
  });

  it("uses Replicate with a token, polling unless the gateway is reachable at a public URL with the webhook key", () => {
    const polling = modelStackEnv({ replicateToken: "r8_x", emulatorUrl: "http://127.0.0.1:8004" });
    expect(polling).toEqual({ MODEL_PROVIDER: "replicate", REPLICATE_API_TOKEN: "r8_x" });
    expect(modelsBanner(polling)).toBe("models: Replicate (polling)");
    const hooked = modelStackEnv({ replicateToken: "r8_x", webhookBaseUrl: "https://api.example.com", webhookSecret: "whsec_a2V5" });
    expect(hooked).toMatchObject({ MODEL_WEBHOOK_URL: "https://api.example.com/api/v1/webhooks/replicate", REPLICATE_WEBHOOK_SECRET: "whsec_a2V5" });
    expect(hooked.MODEL_EMULATOR_WEBHOOK_SECRET).toBeUndefined();
  });

  it("has no provider without either, and blanks a token the caller's environment holds", () => {
    const env = modelStackEnv({ webhookBaseUrl: "http://127.0.0.1:8000", webhookSecret: "whsec_a2V5" });
    expect(env).toEqual({ MODEL_PROVIDER: "none", REPLICATE_API_TOKEN: "" });
    expect(modelsBanner(env)).toMatch(/^models: none/);
  });
});
