import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { evaluateTemplate, type TemplateContext } from "./pipeline-templates.ts";
import { checkPipelineType, loadPipelineTypes, PipelineTypeFile } from "./pipelines.ts";

const ctx: TemplateContext = {
  input: { prompt: "a hat", num_images: 3, tags: ["a", "b"], audio_file_id: null, nested: { size: { w: 4 } } },
  flavor: { style: "noir", suffix: "{{input.prompt}}" },
  stages: { script_gen: { file_ids: ["f1"], results: [{ text: "hello" }] } },
  gates: { approve: { file_ids: ["i1", "i2"] } },
};

describe("pipeline templates", () => {
  it("keeps the value's type when a string is exactly one placeholder", () => {
    expect(evaluateTemplate("{{input.num_images}}", ctx)).toBe(3);
    expect(evaluateTemplate("{{ input.tags }}", ctx)).toEqual(["a", "b"]);
    expect(evaluateTemplate("{{input.nested.size}}", ctx)).toEqual({ w: 4 });
    expect(evaluateTemplate("{{stages.script_gen.results[0].text}}", ctx)).toBe("hello");
    expect(evaluateTemplate("{{gates.approve.file_ids[1]}}", ctx)).toBe("i2");
  });

  it("interpolates placeholders inside text, missing ones as nothing", () => {
    expect(evaluateTemplate("{{input.prompt}}, {{flavor.style}} look {{input.missing}}!", ctx)).toBe("a hat, noir look !");
    expect(evaluateTemplate("n={{input.num_images}}", ctx)).toBe("n=3");
  });

  it("gives null for a missing path, and drops null keys and array items so optional inputs stay optional", () => {
    expect(evaluateTemplate("{{input.nope.deeper}}", ctx)).toBeNull();
    expect(evaluateTemplate("{{stages.nope.file_ids[0]}}", ctx)).toBeNull();
    expect(evaluateTemplate({ a: "{{input.audio_file_id}}", b: 1, c: ["{{input.missing}}", "x"] }, ctx)).toEqual({ b: 1, c: ["x"] });
  });

  it("maps an array with $map, binding item and index", () => {
    expect(evaluateTemplate({ $map: "{{gates.approve.file_ids}}", to: { file_id: "{{item}}", n: "{{index}}" } }, ctx)).toEqual([
      { file_id: "i1", n: 0 },
      { file_id: "i2", n: 1 },
    ]);
    expect(evaluateTemplate({ clips: { $map: "{{input.missing}}", to: { file_id: "{{item}}" } } }, ctx)).toEqual({});
  });

  it("chooses with $if; an absent $else is dropped", () => {
    expect(evaluateTemplate([{ $if: "{{input.audio_file_id}}", $then: { file_id: "{{input.audio_file_id}}" } }], ctx)).toEqual([]);
    expect(evaluateTemplate({ $if: "{{input.tags}}", $then: "yes", $else: "no" }, ctx)).toBe("yes");
    expect(evaluateTemplate({ $if: "{{input.missing}}", $then: "yes", $else: "no" }, ctx)).toBe("no");
  });

  it("leaves numbers, booleans and plain strings alone", () => {
    expect(evaluateTemplate({ n: 1, b: false, s: "plain" }, ctx)).toEqual({ n: 1, b: false, s: "plain" });
  });

  it("refuses a path outside the context", () => {
    expect(() => evaluateTemplate("{{process.env}}", ctx)).toThrow(/starts with process/);
    expect(() => evaluateTemplate("{{input.a()}}", ctx)).toThrow(/not a path/);
  });
});

const minimalType = (stages: unknown[]) =>
  PipelineTypeFile.parse({ name: "t", description: "d", default_flavor: "default", input: { type: "object", properties: {} }, stages });

describe("pipeline types", () => {
  it("loads the built-in types, storyboard among them, with their flavors", () => {
    const types = loadPipelineTypes();
    const storyboard = types.get("storyboard")!;
    expect(storyboard.stages.map((s) => [s.name, s.after])).toEqual([
      ["images", []],
      ["approve_images", ["images"]],
      ["clips", ["approve_images"]],
      ["approve_clips", ["clips"]],
      ["compose", ["approve_clips"]],
    ]);
    expect(Object.keys(storyboard.flavors)).toEqual(expect.arrayContaining(["default", "cinematic"]));
    expect(storyboard.input.safeParse({ prompt: "p", video_prompt: "v" }).data).toMatchObject({ num_images: 4, aspect_ratio: "16:9", duration: 5 });
    expect(storyboard.input.safeParse({ prompt: "p", video_prompt: "v", num_images: 9 }).success).toBe(false);
  });

  it("adds an operator's flavors from another directory", () => {
    const dir = mkdtempSync(join(tmpdir(), "flavors-"));
    mkdirSync(join(dir, "storyboard"));
    writeFileSync(join(dir, "storyboard", "vertical-ad.json"), JSON.stringify({ description: "for ads", params: { image_quality: "high" } }));
    expect(loadPipelineTypes({ flavorsDir: dir }).get("storyboard")!.flavors["vertical-ad"]).toEqual({ description: "for ads", params: { image_quality: "high" } });
    mkdirSync(join(dir, "no-such-type"));
    expect(() => loadPipelineTypes({ flavorsDir: dir })).toThrow(/no-such-type: flavors of a pipeline type that does not exist/);
  });

  it("refuses a stage that waits for a later stage, an unknown job type, a gate over a gate, and a path to a stage not before it", () => {
    const job = { type: "image.generate", input: { prompt: "x" } };
    expect(() => checkPipelineType(minimalType([{ name: "a", after: ["b"], jobs: [job] }, { name: "b", jobs: [job] }]))).toThrow(/waits for b/);
    expect(() => checkPipelineType(minimalType([{ name: "a", jobs: [{ type: "image.nope", input: {} }] }]))).toThrow(/not a job type/);
    expect(() => checkPipelineType(minimalType([{ name: "a", jobs: [job] }, { name: "g", gate: { stage: "a" } }, { name: "h", gate: { stage: "g" } }]))).toThrow(/not a stage of jobs/);
    expect(() => checkPipelineType(minimalType([{ name: "a", jobs: [{ ...job, input: { prompt: "{{stages.b.results[0]}}" } }] }, { name: "b", jobs: [job] }]))).toThrow(/b is not a stage before it/);
    expect(() => checkPipelineType(minimalType([{ name: "a", jobs: [{ ...job, input: { prompt: "{{gates.a.file_ids}}" } }] }]))).toThrow(/not a stage before it/);
  });
});
