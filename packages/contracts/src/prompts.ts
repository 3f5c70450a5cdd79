import { z } from "zod";
import { ModelQuality } from "./job-types.ts";

/** The job types whose prompts are enhanced, and the model families each can run. */
export const promptTargets = { "image.generate": ["flux", "sdxl", "wan"], "video.generate": ["wan"] } as const;
export const PromptTarget = z.enum(["image.generate", "video.generate"]);
export type PromptTarget = z.infer<typeof PromptTarget>;
export const PromptFamily = z.enum(["flux", "sdxl", "wan"]);
export type PromptFamily = z.infer<typeof PromptFamily>;

const bigModel = (quality: ModelQuality) => quality === "high" || quality === "premium";

/**
 * Tokens the target model reads from a prompt (seed 001): SDXL's CLIP encoder reads 77; Wan's
 * umT5 is given 175 at fast quality and 250 at high (its 7B "enhanced" variants); Flux's T5 reads
 * 256 (schnell) or 512 (dev).
 */
export function promptTokenBudget(family: PromptFamily, quality: ModelQuality): number {
  if (family === "sdxl") return 77;
  if (family === "wan") return bigModel(quality) ? 250 : 175;
  return bigModel(quality) ? 512 : 256;
}

/**
 * Tokens of `text`, counted approximately the way CLIP's and T5's tokenizers split English: a word of
 * up to 6 letters or digits is one token, a longer one a token per 6 characters (rare words split
 * into pieces), and every other visible character (punctuation) one token. It errs high by a few
 * percent on plain English, so a prompt cut to the budget is not cut by the model.
 */
export function countPromptTokens(text: string): number {
  let tokens = 0;
  for (const piece of text.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? []) tokens += /^[\p{L}\p{N}]/u.test(piece) ? Math.ceil(piece.length / 6) : 1;
  return tokens;
}

/** `text` cut at a word boundary to at most `budget` tokens (countPromptTokens), trailing commas and spaces dropped. */
export function fitPromptToBudget(text: string, budget: number): { text: string; cut: boolean } {
  if (countPromptTokens(text) <= budget) return { text, cut: false };
  const words = text.split(/\s+/).filter(Boolean);
  let lo = 0;
  let hi = words.length;
  // The longest prefix of whole words within the budget.
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (countPromptTokens(words.slice(0, mid).join(" ")) <= budget) lo = mid;
    else hi = mid - 1;
  }
  return { text: words.slice(0, lo).join(" ").replace(/[\s,;:–—-]+$/, ""), cut: true };
}

const PromptRequestFields = z.object({
  prompt: z.string().trim().min(1).max(2000),
  job_type: PromptTarget.default("image.generate").describe("the job the prompt is for"),
  family: PromptFamily.optional().describe("the model family it is for; default flux for image.generate, wan for video.generate"),
  quality: ModelQuality.default("fast").describe(
    "the target job's quality: fast, economical and balanced use the small language model and the smaller token budget, high and premium the large ones",
  ),
  presets: z.array(z.string().trim().min(1).max(40)).max(8).optional().describe('styles the prompt is to work in ("cinematic", "watercolor")'),
});

const familyFitsTarget = (v: { job_type: PromptTarget; family?: PromptFamily }) => !v.family || (promptTargets[v.job_type] as readonly string[]).includes(v.family);
const familyMessage = { message: "video.generate runs the wan family only", path: ["family"] };

/** POST /api/v1/prompts/enhance (seed 001's enhance-prompt). */
export const EnhancePromptBody = PromptRequestFields.refine(familyFitsTarget, familyMessage);
export type EnhancePromptBody = z.output<typeof EnhancePromptBody>;

/** What the gateway asks the worker holding the provider: the body, and how long it waits for the answer. */
export const EnhancePromptRequest = PromptRequestFields.extend({
  timeout_ms: z.number().int().min(1000).max(600_000).describe("the caller gives up after this long: the worker cancels its prediction a little before"),
}).refine(familyFitsTarget, familyMessage);

/** A model run as a result records it: who served, which model, the prediction, what it cost. */
export const ModelRunRecord = z.object({
  name: z.enum(["replicate", "emulator", "local"]),
  model: z.string(),
  prediction_id: z.string().nullable(),
  predict_time_s: z.number().nullable(),
  cost_usd: z.number().nullable().describe("USD the provider charged (0 for the emulator and local engines)"),
  list_price_usd: z.number().nullable().describe("the catalog price of the run: what Replicate would charge"),
  synthetic: z.boolean().describe("made up by the model emulator, not by the model"),
});

export const EnhancedPrompt = z
  .object({
    original_prompt: z.string(),
    enhanced_prompt: z.string(),
    strategy: z.string().describe("how it was rewritten for the target: sdxl-keywords, flux-descriptive, wan-motion or wan-cinematic"),
    job_type: PromptTarget,
    family: PromptFamily,
    quality: ModelQuality,
    presets: z.array(z.string()),
    model: z.string().describe("the language model that rewrote it"),
    token_count: z.number().int().describe("tokens of the enhanced prompt, counted approximately as the target's tokenizer splits English"),
    original_token_count: z.number().int(),
    token_budget: z.number().int().describe("the most tokens the target model reads: 77 for sdxl, 175 (fast) or 250 (high) for wan, 256 or 512 for flux"),
    compression_applied: z.boolean().describe("the model's answer was over the budget and was cut at a word boundary"),
    provider: ModelRunRecord,
  })
  .meta({ id: "EnhancedPrompt" });
export type EnhancedPrompt = z.infer<typeof EnhancedPrompt>;
