import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { jobTypes } from "@cutroom/contracts";
import { noModels, type ModelProvider, type ModelService } from "@cutroom/worker-runtime";
import { localJobContext } from "@cutroom/worker-runtime/local-job-context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { analyseScript, generateScenes, generateText, readScreenplay } from "./text-jobs.ts";

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-text-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The provider seam with a language model that answers from `reply`, recording each input. */
function fakeProvider(reply: (input: Record<string, unknown>) => string) {
  const inputs: Record<string, unknown>[] = [];
  const client: ModelProvider = {
    name: "emulator",
    synthetic: true,
    run: async (_model, input) => {
      inputs.push(input);
      return { id: `p${inputs.length}`, status: "succeeded", output: reply(input).match(/\s*\S+/g) ?? [], metrics: { predict_time: 0.2 } };
    },
  };
  const service: ModelService = { ...noModels(), provider: "emulator", client };
  return { service, inputs };
}

/** A local job context: the input file, when given, is a local text file. */
function jobContext<I>(type: keyof typeof jobTypes, input: Record<string, unknown>, opts: { service?: ModelService; file?: { path: string; filename: string } } = {}) {
  return localJobContext<I>(type, input, { dir, service: opts.service, file: opts.file && { ...opts.file, contentType: "text/plain" } });
}

const fountain = ["Title: The Lift", "", "INT. LIFT - NIGHT", "", "Two strangers.", "", "ANNA", "Going up?", "", "BEN (O.S.)", "(muffled)", "Hold the door!", "", "EXT. ROOF - DAY", "", "ANNA", "Finally."].join("\n");

async function screenplayFile(text: string | Buffer, name = "lift.fountain") {
  const path = join(dir, `${++n}-${name}`);
  await writeFile(path, text);
  return { path, filename: name };
}

describe("text.script-analysis", () => {
  it("breaks the screenplay down with no model provider at all, without notes", async () => {
    const { ctx } = jobContext("text.script-analysis", { file_id: crypto.randomUUID() }, { file: await screenplayFile(fountain) });
    const result = await analyseScript(ctx as never);
    expect(result).toMatchObject({ filename: "lift.fountain", notes: null, notes_status: "no_provider", provider: { name: "local", model: "fountain", cost_usd: 0 } });
    const b = result.breakdown as { title: string; scenes: { heading: string }[]; characters: { name: string; speeches: number; words: number }[]; totals: Record<string, unknown> };
    expect(b.title).toBe("The Lift");
    expect(b.scenes.map((s) => s.heading)).toEqual(["INT. LIFT - NIGHT", "EXT. ROOF - DAY"]);
    expect(b.characters).toEqual([
      { name: "ANNA", speeches: 2, words: 3, scenes: 2, first_scene: "1" },
      { name: "BEN", speeches: 1, words: 3, scenes: 1, first_scene: "1" },
    ]);
    expect(b.totals).toMatchObject({ scenes: 2, interior: 1, exterior: 1, parentheticals: 1 });
  });

  it("adds the language model's notes when a provider serves, asking with the breakdown and the script", async () => {
    const { service, inputs } = fakeProvider(() => "Tight two-hander. Consider a beat in the lift before the roof.");
    const { ctx } = jobContext("text.script-analysis", { file_id: crypto.randomUUID(), quality: "high" }, { service, file: await screenplayFile(fountain) });
    const result = await analyseScript(ctx as never);
    expect(result).toMatchObject({ notes: "Tight two-hander. Consider a beat in the lift before the roof.", notes_status: "made", notes_model: "meta/meta-llama-3-70b-instruct" });
    expect(result.provider).toMatchObject({ name: "emulator", model: "meta/meta-llama-3-70b-instruct", synthetic: true });
    expect(inputs[0]!.prompt).toContain("2 scenes");
    expect(inputs[0]!.prompt).toContain("ANNA: 2 speeches, 3 words, 2 scenes");
    expect(inputs[0]!.prompt).toContain("Hold the door!");
    expect(inputs[0]!.temperature).toBe(0.3); // the catalog's fixed params win
  });

  it("skips the notes when not asked, even with a provider", async () => {
    const { service, inputs } = fakeProvider(() => "notes");
    const { ctx } = jobContext("text.script-analysis", { file_id: crypto.randomUUID(), notes: false }, { service, file: await screenplayFile(fountain) });
    expect(await analyseScript(ctx as never)).toMatchObject({ notes: null, notes_status: "not_asked" });
    expect(inputs).toHaveLength(0);
  });

  it("refuses a file that is not UTF-8 text, or is too large for a screenplay", async () => {
    const png = await screenplayFile(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0xfe]), "x.png");
    await expect(readScreenplay(png.path, 10)).rejects.toMatchObject({ code: "INVALID_INPUT", message: expect.stringMatching(/not UTF-8/) });
    const nul = await screenplayFile("INT. A - DAY\u0000", "nul.txt");
    await expect(readScreenplay(nul.path, 13)).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await expect(readScreenplay(nul.path, 6 * 1024 * 1024)).rejects.toMatchObject({ code: "INVALID_INPUT", message: expect.stringMatching(/at most/) });
  });
});

describe("text.generate", () => {
  it("puts the model's text in the result and, when asked, in a .txt file; the system prompt and sampling reach the model", async () => {
    const { service, inputs } = fakeProvider(() => "  Once upon a time.  ");
    const { ctx, uploads } = jobContext("text.generate", { prompt: "Start a story", system_prompt: "Be brief", max_tokens: 64, temperature: 0.2, save_as_file: true }, { service });
    const result = await generateText(ctx as never);
    expect(result).toMatchObject({ text: "Once upon a time.", model: "meta/meta-llama-3-8b-instruct", provider: { prediction_id: "p1" } });
    expect(inputs[0]).toMatchObject({ prompt: "Start a story", system_prompt: "Be brief", max_tokens: 64, temperature: 0.2 });
    expect(uploads).toEqual([expect.objectContaining({ filename: "text.txt", contentType: "text/plain" })]);
    expect(await readFile(uploads[0]!.path, "utf8")).toBe("Once upon a time.\n");
  });

  it("fails PROVIDER_ERROR on an empty answer", async () => {
    const { service } = fakeProvider(() => "   ");
    const { ctx } = jobContext("text.generate", { prompt: "Say nothing" }, { service });
    await expect(generateText(ctx as never)).rejects.toMatchObject({ code: "PROVIDER_ERROR" });
  });
});

describe("text.scenes", () => {
  it("returns the N scenes the model wrote, asking once more when the first answer is not valid JSON", async () => {
    let calls = 0;
    const { service, inputs } = fakeProvider(() =>
      ++calls === 1 ? "Scene 1: a robot downtown." : JSON.stringify({ scenes: [1, 2].map((i) => ({ sequence: i, prompt: `Robot, shot ${i}`, duration: 8 })) }),
    );
    const { ctx } = jobContext("text.scenes", { concept_prompt: "Robot exploring Austin, Texas", num_scenes: 2 }, { service });
    const result = await generateScenes(ctx as never);
    expect(result).toMatchObject({ scenes: [{ sequence: 1, prompt: "Robot, shot 1", duration: 8 }, { sequence: 2 }], total_duration: 16, attempts: 2 });
    expect(inputs).toHaveLength(2);
    expect(result.provider_runs).toHaveLength(2);
  });
});
