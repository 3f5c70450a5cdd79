import {
  countPromptTokens,
  fitPromptToBudget,
  promptTokenBudget,
  PromptFamily,
  type EnhancedPrompt,
  type ModelQuality,
  type PromptTarget,
} from "@cutroom/contracts";
import { JobFailure } from "./job-failure.ts";
import type { JobModels } from "./models.ts";

/** Words a prompt may keep after enhancement, by family: its token budget (countPromptTokens) at about 1.3 tokens a word. */
export const promptWordBudgets: Record<string, number> = Object.fromEntries(PromptFamily.options.map((f) => [f, Math.floor(promptTokenBudget(f, "fast") / 1.3)]));

export interface PromptEnhancement {
  prompt: string;
  job_type: PromptTarget;
  /** Default: flux for images, wan for video. */
  family?: PromptFamily;
  /** The target job's quality: the language model of prompt.enhance at that quality, and the target's token budget. */
  quality: ModelQuality;
  /** Styles to work in ("cinematic"). */
  presets?: readonly string[];
  /** The slice of a job's progress the run spans. */
  progress?: [number, number];
  /** An answer with no prompt in it: PROVIDER_ERROR (default), or the prompt kept as it was. */
  onEmptyAnswer?: "fail" | "keep";
}

const SYSTEM_PROMPT =
  "You are a prompt engineer for generative image and video models. You rewrite the prompt you are given for the model named: keep its subject and intent, add concrete visual detail, and answer with the rewritten prompt alone, without a preamble, quotes or notes.";

/** How a prompt is rewritten for its target (seed 001's strategies by model and quality), and within how many words. */
export function promptStrategy(target: PromptTarget, family: PromptFamily, quality: ModelQuality): { name: string; instructions: string } {
  const words = Math.floor(promptTokenBudget(family, quality) / 1.3);
  if (family === "sdxl") {
    return {
      name: "sdxl-keywords",
      instructions: `Rewrite it for Stable Diffusion XL as comma-separated visual keywords, no sentences: the subject first, then its details, the setting, the light, the style and the camera. At most ${words} words: its text encoder reads only 77 tokens.`,
    };
  }
  if (family === "flux") {
    return {
      name: "flux-descriptive",
      instructions: `Rewrite it for the Flux text-to-image model as one vivid, concrete paragraph in plain sentences: the subject and its details, the setting, the light, the composition and the style. At most ${words} words.`,
    };
  }
  if (target === "image.generate") {
    return {
      name: "wan-still",
      instructions: `Rewrite it for the Wan model making a single still frame: the subject and its pose, the setting, the light, the framing and the style, in plain sentences. At most ${words} words.`,
    };
  }
  const big = quality === "high" || quality === "premium";
  return big
    ? {
        name: "wan-cinematic",
        instructions: `Rewrite it for the Wan text-to-video model as a cinematic shot: the subject, what it does and how it moves, the camera's movement and lens, the framing, the light and its mood, the atmosphere and the colour, consistent from the first frame to the last. At most ${words} words.`,
      }
    : {
        name: "wan-motion",
        instructions: `Rewrite it for the Wan text-to-video model: the subject, what it does and how it moves, the camera's movement, the setting and the light, consistent from the first frame to the last. At most ${words} words.`,
      };
}

const PREAMBLE = /^(here|sure|certainly|okay|ok)\b.*:$|^(rewritten|enhanced|improved) prompt:$/i;

/** The rewritten prompt in a model's answer: a preamble line ("Here is the prompt:") and wrapping quotes left out, the first paragraph kept. */
export function cleanEnhancedPrompt(answer: string): string {
  const lines = answer.trim().split("\n");
  while (lines.length && (lines[0]!.trim() === "" || PREAMBLE.test(lines[0]!.trim()))) lines.shift();
  const paragraph = lines.join("\n").split(/\n\s*\n/)[0] ?? "";
  return paragraph
    .replace(/\s*\n\s*/g, " ")
    .replace(/^["'“”]+|["'“”]+$/g, "")
    .trim();
}

/**
 * Seed 001's prompt enhancement: the language model of the catalog (prompt.enhance, at the quality
 * asked) rewrites the prompt by the target's strategy; the answer is cut at a word boundary to the
 * target's token budget.
 */
export async function enhancePromptDetailed(models: JobModels, req: PromptEnhancement): Promise<EnhancedPrompt> {
  const family = req.family ?? (req.job_type === "video.generate" ? "wan" : "flux");
  const budget = promptTokenBudget(family, req.quality);
  const strategy = promptStrategy(req.job_type, family, req.quality);
  const presets = [...(req.presets ?? [])];
  // The prompt is quoted first: what follows only says how to rewrite it.
  const ask = [
    `Prompt: "${req.prompt.replaceAll('"', "'")}"`,
    strategy.instructions,
    presets.length ? `Work in these styles: ${presets.join(", ")}.` : "",
  ]
    .filter(Boolean)
    .join("\n\n");
  const run = await models.predict({
    jobType: "prompt.enhance",
    quality: req.quality,
    output: "text",
    input: { system_prompt: SYSTEM_PROMPT, prompt: ask, max_tokens: Math.ceil(budget * 1.5) },
    ...(req.progress ? { progress: req.progress } : {}),
  });
  let cleaned = cleanEnhancedPrompt(run.text ?? "");
  if (!cleaned && req.onEmptyAnswer !== "keep") throw new JobFailure("PROVIDER_ERROR", `${run.model.model} answered with no prompt`);
  cleaned ||= req.prompt;
  const fitted = fitPromptToBudget(cleaned, budget);
  return {
    original_prompt: req.prompt,
    enhanced_prompt: fitted.text,
    strategy: strategy.name,
    job_type: req.job_type,
    family,
    quality: req.quality,
    presets,
    model: run.model.model,
    token_count: countPromptTokens(fitted.text),
    original_token_count: countPromptTokens(req.prompt),
    token_budget: budget,
    compression_applied: fitted.cut,
    provider: run.provider,
  };
}

export interface EnhancePromptRequest {
  prompt: string;
  /** The model family the prompt is for (sdxl, flux, wan): sets the word budget. */
  family: string;
  /** What the prompt makes: a video prompt is asked for motion and camera work as well. */
  medium: "image" | "video";
  /** The slice of the job's progress the run spans; default [2, 10]. */
  progress?: [number, number];
}

/**
 * Seed 001's "enhanced" variants, inside a generation job: enhancePromptDetailed at fast quality
 * (the catalog use a job declares), the family's strategy and token budget. An empty answer keeps
 * the prompt as it was.
 */
export async function enhancePrompt(models: JobModels, req: EnhancePromptRequest): Promise<string> {
  const family = PromptFamily.safeParse(req.family);
  const enhanced = await enhancePromptDetailed(models, {
    prompt: req.prompt,
    job_type: req.medium === "video" ? "video.generate" : "image.generate",
    ...(family.success ? { family: family.data } : {}),
    quality: "fast",
    progress: req.progress ?? [2, 10],
    onEmptyAnswer: "keep",
  });
  return enhanced.enhanced_prompt;
}
