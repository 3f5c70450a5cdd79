import { randomUUID } from "node:crypto";
import { evaluateTemplate, getJobType, loadPipelineTypes, type PipelineType, type TemplateContext } from "@cutroom/contracts";
import { describe, expect, it } from "vitest";
import { evaluateCount, expandStageJobs, PREDICTED_TEXT, predictOutputs } from "./pipeline-plan.ts";

/*
 * The built-in pipeline types against the job types they run: every stage's templates, evaluated as
 * the engine evaluates them (flavor params over the input, then each stage over what the stages
 * before it made), must give inputs the job types' own schemas accept. Twice: with the outputs the
 * estimate predicts before anything runs (POST /pipelines), and with results as the workers return
 * them. So a type cannot drift from the job types without a test failing here.
 */

const types = loadPipelineTypes();
const productImage = randomUUID();
const song = randomUUID();

/** Inputs to try each type with: everything given, and the least allowed. */
const samples: Record<string, Record<string, unknown>[]> = {
  storyboard: [
    { prompt: "a man buys a hat", num_images: 3, num_clips: 2, video_prompt: "he tips the hat", duration: 4, text_overlays: [{ text: "Chapter 1", duration: 2 }], audio_file_id: song },
    { prompt: "a hat", video_prompt: "spin" },
  ],
  "product-video": [
    { product_name: "EcoWater Bottle", style: "modern", cta_text: "Buy Now!", product_image_file_id: productImage, duration: 6, aspect_ratio: "9:16" },
    { product_name: "x".repeat(100), style: "energetic", cta_text: "y".repeat(50) },
  ],
  "music-video": [
    { concept_prompt: "Robot exploring Austin, Texas", num_scenes: 3, style: "neon noir, rain", scene_duration: 4, aspect_ratio: "9:16", audio_file_id: song },
    { concept_prompt: "c".repeat(1000), num_scenes: 8 },
  ],
};

/** What a worker's handler returns for a job (apps/worker-*): text.generate's text, text.scenes' scene list; media jobs only their files. */
function workerResult(type: string, input: Record<string, unknown>): Record<string, unknown> {
  if (type === "text.generate") return { text: "Clear, cold water wherever the day takes you, in a bottle that lasts a lifetime.", characters: 80 };
  if (type === "text.scenes") {
    const n = input.num_scenes as number;
    return { scenes: Array.from({ length: n }, (_, i) => ({ sequence: i + 1, prompt: `a silver robot walks down street ${i + 1} at dusk`, duration: 7.5 })) };
  }
  return {};
}

interface MadeJob {
  stage: string;
  type: string;
  input: Record<string, unknown>;
  fileIds: string[];
}

/**
 * Runs a type's stages on paper: each job's input as the templates give it, parsed by its job type
 * (the test fails naming the stage when one is refused), its outputs fake file ids; every gate
 * passes all the outputs of its stage (up to its max), as the estimate assumes.
 */
function walk(type: PipelineType, flavor: string, rawInput: Record<string, unknown>, results: "predicted" | "worker"): MadeJob[] {
  const input = type.input.parse(rawInput);
  const params = evaluateTemplate(type.flavors[flavor]!.params, { input, flavor: {}, stages: {}, gates: {} }) as Record<string, unknown>;
  const ctx: TemplateContext = { input, flavor: params, stages: {}, gates: {} };
  const made: MadeJob[] = [];
  for (const def of type.stages) {
    if (def.gate) {
      const outputs = ctx.stages[def.gate.stage]!.file_ids;
      const max = evaluateCount(def.gate.max, ctx, def.name, "max");
      ctx.gates[def.name] = { file_ids: max === null ? outputs : outputs.slice(0, max) };
      continue;
    }
    const stage = { file_ids: [] as string[], results: [] as unknown[] };
    for (const spec of expandStageJobs(def, ctx)) {
      const parsed = getJobType(spec.type)!.input.safeParse(spec.input);
      if (!parsed.success) {
        throw new Error(`${type.name}/${flavor} (${results}), stage ${def.name}: ${spec.type} refuses ${JSON.stringify(spec.input)}: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`);
      }
      const jobInput = parsed.data as Record<string, unknown>;
      const predicted = predictOutputs(spec.type, jobInput, {});
      const fileIds = predicted.files.map(() => randomUUID());
      stage.file_ids.push(...fileIds);
      stage.results.push({ ...(results === "predicted" ? predicted.result : workerResult(spec.type, jobInput)), files: fileIds.map((file_id) => ({ file_id })) });
      made.push({ stage: def.name, type: spec.type, input: jobInput, fileIds });
    }
    ctx.stages[def.name] = stage;
  }
  return made;
}

describe("built-in pipeline types", () => {
  it("loads product-video and music-video with their flavors, stages in the seed's order", () => {
    const product = types.get("product-video")!;
    expect(product.stages.map((s) => [s.name, s.after])).toEqual([
      ["script_gen", []],
      ["voice_gen", ["script_gen"]],
      ["video_gen", ["script_gen"]],
      ["compositing", ["voice_gen", "video_gen"]],
    ]);
    expect(Object.keys(product.flavors)).toEqual(expect.arrayContaining(["default", "premium"]));
    expect(product.input.safeParse({ product_name: "p", style: "modern", cta_text: "Buy" }).data).toMatchObject({ duration: 5 });
    expect(product.input.safeParse({ product_name: "p".repeat(101), style: "modern", cta_text: "Buy" }).success).toBe(false);
    expect(product.input.safeParse({ product_name: "p", style: "baroque", cta_text: "Buy" }).success).toBe(false);
    expect(product.input.safeParse({ product_name: "p", style: "modern", cta_text: "c".repeat(51) }).success).toBe(false);

    const music = types.get("music-video")!;
    expect(music.stages.map((s) => [s.name, s.after])).toEqual([
      ["scenes", []],
      ["character", []],
      ["clips", ["scenes", "character"]],
      ["compose", ["clips"]],
    ]);
    expect(Object.keys(music.flavors)).toEqual(expect.arrayContaining(["default", "example"]));
    expect(music.input.safeParse({ concept_prompt: "c" }).data).toMatchObject({ num_scenes: 4, scene_duration: 5, aspect_ratio: "16:9" });
    expect(music.input.safeParse({ concept_prompt: "c", num_scenes: 9 }).success).toBe(false);
  });

  for (const [name, type] of types) {
    for (const flavor of Object.keys(type.flavors)) {
      it(`${name}/${flavor}: every stage's job inputs pass their job types' schemas, as estimated and as run`, () => {
        const inputs = samples[name];
        expect(inputs, `a sample input for ${name} in this test`).toBeDefined();
        for (const input of inputs!) {
          for (const results of ["predicted", "worker"] as const) expect(walk(type, flavor, input, results).length).toBeGreaterThan(0);
        }
      });
    }
  }

  it("product-video: the voice ends with the call to action; the clip starts from the product image; the compose has the clip, the voice, the CTA and the product image", () => {
    const made = walk(types.get("product-video")!, "default", samples["product-video"]![0]!, "worker");
    const [script, shot] = made.filter((j) => j.stage === "script_gen");
    expect(script!.input.prompt).toContain("EcoWater Bottle");
    expect(shot!.input.prompt).toContain("modern");
    const voice = made.find((j) => j.stage === "voice_gen")!;
    expect(voice.input.text).toBe("Clear, cold water wherever the day takes you, in a bottle that lasts a lifetime. Buy Now!");
    const clip = made.find((j) => j.stage === "video_gen")!;
    expect(clip.input).toMatchObject({ image_file_id: productImage, duration_s: 6, aspect_ratio: "9:16" });
    expect(clip.input.prompt).toBe("EcoWater Bottle, modern product commercial. Clear, cold water wherever the day takes you, in a bottle that lasts a lifetime.");
    const compose = made.find((j) => j.stage === "compositing")!;
    expect(compose.input).toMatchObject({
      clips: [{ file_id: clip.fileIds[0] }],
      audio: [{ file_id: voice.fileIds[0], role: "voice" }],
      text_overlays: [{ text: "Buy Now!", start_time: 0, duration: 6, position: "bottom", box: true }],
      image_overlays: [{ file_id: productImage, start_time: 0, duration: 6, x: 24, y: 24, width: 160 }],
      aspect_ratio: "9:16",
    });
  });

  it("product-video without a product image: a text-to-video clip and no image overlay", () => {
    const made = walk(types.get("product-video")!, "default", { product_name: "Hat", style: "minimalist", cta_text: "Shop" }, "worker");
    expect(made.find((j) => j.stage === "video_gen")!.input.image_file_id).toBeUndefined();
    const compose = made.find((j) => j.stage === "compositing")!.input;
    expect(compose.image_overlays).toEqual([]);
    expect(compose.text_overlays).toMatchObject([{ text: "Shop", duration: 5 }]);
  });

  it("music-video: a clip per scene with the scene's prompt, each from the character reference, composed in scene order over the song", () => {
    const made = walk(types.get("music-video")!, "default", samples["music-video"]![0]!, "worker");
    const scenes = made.find((j) => j.stage === "scenes")!;
    expect(scenes.input).toMatchObject({ concept_prompt: "Robot exploring Austin, Texas", num_scenes: 3, scene_duration: 4, style: "neon noir, rain" });
    const character = made.find((j) => j.stage === "character")!;
    expect(character.input).toMatchObject({ num_images: 1, aspect_ratio: "9:16" });
    const clips = made.filter((j) => j.stage === "clips");
    expect(clips.map((c) => c.input.prompt)).toEqual([1, 2, 3].map((i) => `a silver robot walks down street ${i} at dusk`));
    expect(clips.every((c) => c.input.image_file_id === character.fileIds[0] && c.input.duration_s === 4)).toBe(true);
    const compose = made.find((j) => j.stage === "compose")!.input;
    expect(compose).toMatchObject({ clips: clips.map((c) => ({ file_id: c.fileIds[0] })), audio: [{ file_id: song, role: "music" }], transition: "cut" });

    const noSong = walk(types.get("music-video")!, "example", { concept_prompt: "a fox in the snow", num_scenes: 2 }, "worker");
    expect(noSong.find((j) => j.stage === "compose")!.input).toMatchObject({ audio: [], transition: "crossfade" });
    expect(noSong.filter((j) => j.stage === "clips")).toHaveLength(2);
  });

  it("predicts a text.generate job's text as one every job that takes a text accepts, so a stage fed only that text is not refused before the run", () => {
    const { text } = predictOutputs("text.generate", { prompt: "write", max_tokens: 64 }, {}).result as { text: string };
    expect(text).toBe(PREDICTED_TEXT);
    const consumers: [string, Record<string, unknown>][] = [
      ["audio.tts", { text }],
      ["video.generate", { prompt: text }],
      ["image.generate", { prompt: text }],
      ["text.generate", { prompt: text }],
      ["video.compose", { clips: [{ file_id: randomUUID() }], text_overlays: [{ text, duration: 1 }] }],
    ];
    for (const [type, input] of consumers) expect(getJobType(type)!.input.safeParse(input).error?.issues, type).toBeUndefined();
  });
});
