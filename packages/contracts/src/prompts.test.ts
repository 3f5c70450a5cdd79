import { describe, expect, it } from "vitest";
import { countPromptTokens, EnhancePromptBody, fitPromptToBudget, promptTokenBudget } from "./prompts.ts";

describe("prompt token budgets", () => {
  it("gives each target family its token budget: sdxl 77, wan 175 fast and 250 high, flux 256 or 512", () => {
    expect(promptTokenBudget("sdxl", "fast")).toBe(77);
    expect(promptTokenBudget("sdxl", "premium")).toBe(77);
    expect(promptTokenBudget("wan", "fast")).toBe(175);
    expect(promptTokenBudget("wan", "balanced")).toBe(175);
    expect(promptTokenBudget("wan", "high")).toBe(250);
    expect([promptTokenBudget("flux", "economical"), promptTokenBudget("flux", "premium")]).toEqual([256, 512]);
  });

  it("counts a short word as one token, a long one a token per 6 characters, and each punctuation mark", () => {
    expect(countPromptTokens("a red fox")).toBe(3);
    expect(countPromptTokens("a red fox, at dusk.")).toBe(7);
    expect(countPromptTokens("photorealistic")).toBe(3); // 14 characters
    expect(countPromptTokens("  ")).toBe(0);
    expect(countPromptTokens("4k 35mm")).toBe(2);
  });

  it("cuts a prompt over its budget at a word boundary, trailing commas dropped, and leaves one within it", () => {
    const long = Array.from({ length: 60 }, (_, i) => `word${i},`).join(" ");
    const { text, cut } = fitPromptToBudget(long, 77);
    expect(cut).toBe(true);
    expect(countPromptTokens(text)).toBeLessThanOrEqual(77);
    expect(countPromptTokens(text)).toBeGreaterThan(70);
    expect(text.endsWith(",")).toBe(false);
    expect(long.startsWith(text)).toBe(true);
    expect(fitPromptToBudget("a red fox", 77)).toEqual({ text: "a red fox", cut: false });
  });

  it("takes image.generate with any family and video.generate with wan only", () => {
    expect(EnhancePromptBody.parse({ prompt: "a fox" })).toMatchObject({ job_type: "image.generate", quality: "fast" });
    expect(EnhancePromptBody.safeParse({ prompt: "a fox", job_type: "video.generate", family: "wan" }).success).toBe(true);
    const refused = EnhancePromptBody.safeParse({ prompt: "a fox", job_type: "video.generate", family: "sdxl" });
    expect(refused.error?.issues[0]).toMatchObject({ path: ["family"] });
    expect(EnhancePromptBody.safeParse({ prompt: "   " }).success).toBe(false);
  });
});
