import { GeneratedScene, type TextScenesInput } from "@cutroom/contracts";
import { JobFailure } from "@cutroom/worker-runtime";
import { z } from "zod";

export const SCENES_SYSTEM_PROMPT =
  "You are a music video director writing shot prompts for a text-to-video model. You answer with JSON only: no prose, no code fences.";

/** The request for the scene list; the JSON example comes last, as the shape the answer must take. */
export function scenesPrompt(input: Pick<TextScenesInput, "concept_prompt" | "num_scenes" | "scene_duration" | "style">): string {
  return [
    `Split this music video concept into exactly ${input.num_scenes} scenes: "${input.concept_prompt.replaceAll('"', "'")}".`,
    input.style ? `Every scene keeps this style: "${input.style.replaceAll('"', "'")}".` : "",
    "Each scene is one continuous shot: its prompt says who or what is seen, what happens, where, the camera and the light, in one or two sentences, and keeps the characters and look of the others.",
    `Each scene lasts about ${input.scene_duration} seconds. Number the scenes from 1, in the order they play.`,
    "Answer with JSON of this shape and nothing else:",
    JSON.stringify({ scenes: [{ sequence: 1, prompt: "…", duration: input.scene_duration }] }),
  ]
    .filter(Boolean)
    .join("\n");
}

/** The JSON in a model's answer: code fences and any prose around the outermost object or array left out. */
export function extractJson(answer: string): unknown {
  const text = answer.replace(/```(?:json)?/gi, "");
  const start = text.search(/[[{]/);
  const end = Math.max(text.lastIndexOf("}"), text.lastIndexOf("]"));
  if (start < 0) throw new Error("the answer holds no JSON");
  try {
    // An answer cut short (max_tokens) has no closing bracket: it fails to parse, saying so.
    return JSON.parse(end > start ? text.slice(start, end + 1) : text.slice(start));
  } catch (err) {
    throw new Error(`the answer's JSON does not parse: ${(err as Error).message}`);
  }
}

const SceneList = z.object({ scenes: z.array(GeneratedScene) });

/**
 * The scenes of a model's answer, checked: exactly `count`, each with a prompt and a duration, their
 * sequence numbers all different; returned in sequence order, numbered 1…count. Throws with what is wrong.
 */
export function parseScenes(answer: string, count: number): GeneratedScene[] {
  const json = extractJson(answer);
  // The object asked for, or the bare list some models answer with.
  const parsed = SceneList.safeParse(Array.isArray(json) ? { scenes: json } : json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`the JSON is not a scene list (${issue.path.join(".") || "the answer"}: ${issue.message})`);
  }
  const { scenes } = parsed.data;
  if (scenes.length !== count) throw new Error(`it has ${scenes.length} scenes, not ${count}`);
  if (new Set(scenes.map((s) => s.sequence)).size !== scenes.length) throw new Error("two scenes have the same sequence number");
  return [...scenes].sort((a, b) => a.sequence - b.sequence).map((s, i) => ({ sequence: i + 1, prompt: s.prompt, duration: s.duration }));
}

/** Asks the language model; resolves with its answer. */
export type Complete = (prompt: string) => Promise<string>;

/**
 * text.scenes' exchange with the model: the request, and when the answer is not the scene list asked
 * for, one repair request naming what was wrong; a second bad answer fails the job (PROVIDER_ERROR).
 */
export async function writeScenes(complete: Complete, input: Pick<TextScenesInput, "concept_prompt" | "num_scenes" | "scene_duration" | "style">): Promise<{ scenes: GeneratedScene[]; attempts: number }> {
  const prompt = scenesPrompt(input);
  const first = await complete(prompt);
  let problem: string;
  try {
    return { scenes: parseScenes(first, input.num_scenes), attempts: 1 };
  } catch (err) {
    problem = (err as Error).message;
  }
  const repair = [prompt, "", "Your previous answer was:", first.slice(0, 4000), "", `It could not be used: ${problem}. Answer again with exactly the JSON asked for and nothing else.`].join("\n");
  const second = await complete(repair);
  try {
    return { scenes: parseScenes(second, input.num_scenes), attempts: 2 };
  } catch (err) {
    throw new JobFailure("PROVIDER_ERROR", `the language model did not return ${input.num_scenes} valid scenes, even when asked again: ${(err as Error).message}`);
  }
}
