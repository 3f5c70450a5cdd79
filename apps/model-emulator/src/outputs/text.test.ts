import { describe, expect, it } from "vitest";
import { Seed } from "../determinism.ts";
import { complete, jsonTemplate } from "./text.ts";

const run = (prompt: string, extra: Partial<Parameters<typeof complete>[0]> = {}) => complete({ prompt, max_tokens: 512, min_tokens: 0, ...extra }, new Seed("test", prompt, extra));

describe("emulated language model", () => {
  it("enhances a quoted prompt: the passage comes first, then descriptors", () => {
    const { tokens } = run('Enhance this image prompt: "a lighthouse at dusk". Reply with the prompt only.');
    const text = tokens.join("");
    expect(text.startsWith("a lighthouse at dusk, ")).toBe(true);
    expect(tokens.length).toBeGreaterThan(6);
  });

  it("answers JSON of the example's shape, with as many items as the prompt asks for", () => {
    const prompt = 'Write 4 scenes for a music video about a desert road trip. Answer in JSON like [{"sequence": 1, "prompt": "...", "duration": 5}]';
    const value = JSON.parse(run(prompt).tokens.join("")) as Array<{ sequence: number; prompt: string; duration: number }>;
    expect(value).toHaveLength(4);
    expect(value.map((s) => s.sequence)).toEqual([1, 2, 3, 4]);
    for (const scene of value) {
      expect(scene.duration).toBe(5);
      expect(scene.prompt).toContain("desert road trip");
    }
  });

  it("fills a JSON object example from the system prompt, and keeps it whole past max_tokens", () => {
    const system = 'Reply in JSON: {"notes": [{"scene": 1, "note": "..."}], "summary": "..."}';
    const value = JSON.parse(run("Give notes on this script: 'INT. KITCHEN - NIGHT, two friends argue'", { system_prompt: system, max_tokens: 5 }).tokens.join("")) as {
      notes: Array<{ scene: number; note: string }>;
      summary: string;
    };
    expect(value.notes).toHaveLength(1);
    expect(typeof value.summary).toBe("string");
  });

  it("answers {text} when JSON is asked without an example", () => {
    expect(JSON.parse(run("Describe a sunset as JSON").tokens.join(""))).toEqual({ text: expect.any(String) });
  });

  it("cuts plain text at max_tokens and pads it to min_tokens", () => {
    expect(run("Tell me about whales and their songs", { max_tokens: 3 }).tokens).toHaveLength(3);
    expect(run("Tell me about whales", { min_tokens: 40 }).tokens.length).toBeGreaterThanOrEqual(40);
  });

  it("gives the same reply to the same request", () => {
    expect(run('Enhance: "a red kite"').tokens).toEqual(run('Enhance: "a red kite"').tokens);
    expect(run('Enhance: "a red kite"').tokens).not.toEqual(run('Enhance: "a blue kite"').tokens);
  });

  it("finds the last JSON example in a text and ignores brackets that are not JSON", () => {
    expect(jsonTemplate('use [brackets] freely, then {"a": [1, 2]} or {"b": "x}"}')).toEqual({ b: "x}" });
    expect(jsonTemplate("no example here [at all]")).toBeUndefined();
  });
});
