import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TextGenerateInput, TextScenesInput, TextScriptAnalysisInput } from "@cutroom/contracts";
import { JobFailure, type JobContext, type JobHandlers, type JobOutput, type ProviderRecord } from "@cutroom/worker-runtime";
import { SCENES_SYSTEM_PROMPT, writeScenes } from "./scenes.ts";
import { analyseScreenplay, type Breakdown } from "./screenplay.ts";

/** text.generate: one completion of the catalog's language model; the text in the result, and as a .txt file when asked. */
export async function generateText(ctx: JobContext<TextGenerateInput>): Promise<JobOutput> {
  const input = ctx.input;
  const run = await ctx.stage("generate", () =>
    ctx.models.predict({
      jobType: "text.generate",
      quality: input.quality,
      output: "text",
      input: { prompt: input.prompt, ...(input.system_prompt ? { system_prompt: input.system_prompt } : {}), max_tokens: input.max_tokens, temperature: input.temperature },
      progress: [5, 90],
    }),
  );
  const text = (run.text ?? "").trim();
  if (!text) throw new JobFailure("PROVIDER_ERROR", `${run.model.model} answered with no text`);
  const files = await ctx.stage("upload", async () => {
    if (!input.save_as_file) return [];
    const path = join(ctx.tmpDir, "text.txt");
    await writeFile(path, `${text}\n`);
    return [await ctx.uploadOutput(path, "text.txt", "text/plain")];
  });
  return { files, text, characters: text.length, model: run.model.model, provider: run.provider };
}

/** text.scenes: seed 002's scene list, asked of the language model as JSON and checked (one repair request). */
export async function generateScenes(ctx: JobContext<TextScenesInput>): Promise<JobOutput> {
  const input = ctx.input;
  let last: { model: string; provider: ProviderRecord } | undefined;
  const { scenes, attempts } = await ctx.stage("generate", () =>
    writeScenes(async (prompt) => {
      // The repair request, when there is one, takes the rest of the bar.
      const span: [number, number] = last ? [50, 95] : [5, 50];
      const run = await ctx.models.predict({
        jobType: "text.scenes",
        quality: input.quality,
        output: "text",
        input: { prompt, system_prompt: SCENES_SYSTEM_PROMPT, max_tokens: 300 + 150 * input.num_scenes },
        progress: span,
      });
      last = { model: run.model.model, provider: run.provider };
      return run.text ?? "";
    }, input),
  );
  if (attempts > 1) ctx.log.info("the model's first answer was not the scene list asked for; its second was");
  return {
    files: [],
    scenes,
    total_duration: Math.round(scenes.reduce((sum, s) => sum + s.duration, 0) * 100) / 100,
    attempts,
    model: last!.model,
    provider: last!.provider,
    ...(ctx.models.runs.length > 1 ? { provider_runs: ctx.models.runs } : {}),
  };
}

/** A screenplay is text: up to this many bytes (a feature is 200–400 KB). */
export const MAX_SCREENPLAY_BYTES = 5 * 1024 * 1024;
/** What the notes request quotes of the script itself: about 4,000 tokens, within the smallest model's context beside the breakdown. */
const NOTES_EXCERPT_CHARS = 16_000;

/** The file's text, refusing what is not a UTF-8 text file of a screenplay's size. */
export async function readScreenplay(path: string, size: number): Promise<string> {
  if (size > MAX_SCREENPLAY_BYTES) throw new JobFailure("INVALID_INPUT", `the screenplay is ${size} bytes; at most ${MAX_SCREENPLAY_BYTES} are read`);
  const bytes = await readFile(path);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new JobFailure("INVALID_INPUT", "the screenplay is not UTF-8 text: upload it as Fountain or plain text");
  }
  if (text.includes("\u0000")) throw new JobFailure("INVALID_INPUT", "the screenplay is not a text file: upload it as Fountain or plain text");
  return text;
}

/** The notes request: the breakdown's figures and the opening of the script. */
export function notesPrompt(b: Breakdown, text: string): string {
  const scenes = b.scenes
    .slice(0, 80)
    .map((s) => `${s.number}. ${s.heading} (${s.page_eighths}/8 page; ${s.characters.join(", ") || "no dialogue"})`)
    .join("\n");
  const people = b.characters
    .slice(0, 25)
    .map((c) => `${c.name}: ${c.speeches} speeches, ${c.words} words, ${c.scenes} scenes`)
    .join("\n");
  const excerpt = text.length > NOTES_EXCERPT_CHARS ? `${text.slice(0, NOTES_EXCERPT_CHARS)}\n[…the script goes on]` : text;
  return [
    `Screenplay${b.title ? ` "${b.title}"` : ""}: ${b.totals.scenes} scenes, ${b.page_count} pages (about ${Math.round(b.runtime_seconds / 60)} minutes), ${b.totals.characters} speaking characters.`,
    `Scenes:\n${scenes || "(none)"}${b.scenes.length > 80 ? `\n…and ${b.scenes.length - 80} more` : ""}`,
    `Characters:\n${people || "(none)"}`,
    `The script${text.length > NOTES_EXCERPT_CHARS ? " (its opening)" : ""}:\n${excerpt}`,
    "Give concise notes on this screenplay: structure and pacing, the characters and their dialogue, and what production should plan for (locations, night scenes, cast). Short paragraphs or bullet points.",
  ].join("\n\n");
}

type NotesStatus = "made" | "not_asked" | "no_provider";

/**
 * text.script-analysis: the screenplay broken down locally (screenplay.ts), exactly and without any
 * provider; then, when asked and a provider serves, a language model's notes on it.
 */
export async function analyseScript(ctx: JobContext<TextScriptAnalysisInput>): Promise<JobOutput> {
  const input = ctx.input;
  const file = await ctx.stage("fetch", () => ctx.fetchInput(input.file_id));
  const text = await readScreenplay(file.path, file.size);
  ctx.progress(15);

  const breakdown = await ctx.stage("breakdown", async () => analyseScreenplay(text));
  const local = ctx.models.local(ctx.models.resolve("text.script-analysis", "breakdown"));
  ctx.progress(30);

  const notes = await ctx.stage("notes", async (): Promise<{ status: NotesStatus; text: string | null; model?: string; provider?: ProviderRecord }> => {
    if (!input.notes) return { status: "not_asked", text: null };
    if (ctx.models.provider === "none") {
      ctx.log.info("no model provider serves here: the breakdown comes without notes");
      return { status: "no_provider", text: null };
    }
    const run = await ctx.models.predict({
      jobType: "text.script-analysis",
      quality: input.quality,
      output: "text",
      input: {
        prompt: notesPrompt(breakdown, text),
        system_prompt: "You are an experienced script consultant and line producer. You are specific, brief and constructive.",
        max_tokens: 800,
      },
      progress: [30, 95],
    });
    return { status: "made", text: (run.text ?? "").trim() || null, model: run.model.model, provider: run.provider };
  });

  return {
    files: [],
    filename: file.filename,
    breakdown,
    notes: notes.text,
    notes_status: notes.status,
    ...(notes.model ? { notes_model: notes.model } : {}),
    provider: notes.provider ?? local,
    provider_runs: ctx.models.runs,
  };
}

/** worker-image's text queue handlers (the text.* types run on the image queue: ADR 018). */
export function createTextHandlers(): JobHandlers {
  return {
    "text.generate": generateText,
    "text.scenes": generateScenes,
    "text.script-analysis": analyseScript,
  };
}
