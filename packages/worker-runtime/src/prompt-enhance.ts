import type { JobModels } from "./models.ts";

/** Words a prompt may keep after enhancement, by family: CLIP reads 77 tokens (SDXL); Wan and Flux read far more. */
export const promptWordBudgets: Record<string, number> = { sdxl: 60, flux: 180, wan: 200 };

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
 * Seed 001's "enhanced" variants: the language model of the catalog (prompt.enhance) rewrites the
 * prompt for the family, within its word budget. The answer's first paragraph is kept, unquoted;
 * an empty answer keeps the prompt as it was.
 */
export async function enhancePrompt(models: JobModels, req: EnhancePromptRequest): Promise<string> {
  const budget = promptWordBudgets[req.family] ?? 150;
  const ask =
    req.medium === "video"
      ? `You rewrite prompts for the ${req.family} text-to-video model: the subject, its motion, the camera's movement and the scene's light, consistent from the first frame to the last.`
      : `You rewrite prompts for the ${req.family} text-to-image model: vivid, concrete, visual.`;
  const run = await models.predict({
    jobType: "prompt.enhance",
    quality: "fast",
    output: "text",
    input: {
      system_prompt: `${ask} Keep the subject. Answer with the prompt alone, at most ${budget} words.`,
      prompt: req.prompt,
      max_tokens: Math.ceil(budget * 1.5),
    },
    progress: req.progress ?? [2, 10],
  });
  const text = (run.text ?? "").trim().split(/\n\s*\n/)[0]!.replace(/^["'“]+|["'”]+$/g, "").trim();
  const words = text.split(/\s+/).filter(Boolean);
  return words.length ? words.slice(0, budget).join(" ") : req.prompt;
}
