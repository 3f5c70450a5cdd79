import { describe, expect, it } from "vitest";
import { extractJson, parseScenes, scenesPrompt, writeScenes } from "./scenes.ts";

const input = { concept_prompt: "Robot exploring Austin, Texas", num_scenes: 3, scene_duration: 8, style: undefined };
const scene = (sequence: number, duration = 8) => ({ sequence, prompt: `Silver robot, shot ${sequence}`, duration });
const answer = (scenes: unknown) => JSON.stringify({ scenes });

/** A model that gives the answers in order, and records what it was asked. */
function model(...answers: string[]) {
  const asked: string[] = [];
  return {
    asked,
    complete: async (prompt: string) => {
      asked.push(prompt);
      const next = answers.shift();
      if (next === undefined) throw new Error("asked once too often");
      return next;
    },
  };
}

describe("text.scenes", () => {
  it("asks for exactly N scenes of the concept, with the JSON shape last", () => {
    const prompt = scenesPrompt({ ...input, style: 'neon "noir"' });
    expect(prompt).toContain('exactly 3 scenes: "Robot exploring Austin, Texas"');
    expect(prompt).toContain("\"neon 'noir'\"");
    expect(prompt.trim().endsWith('{"scenes":[{"sequence":1,"prompt":"…","duration":8}]}')).toBe(true);
  });

  it("takes a valid answer at once, in sequence order, numbered from 1", async () => {
    const m = model(answer([scene(2), scene(1, 6.5), scene(3)]));
    const { scenes, attempts } = await writeScenes(m.complete, input);
    expect(attempts).toBe(1);
    expect(scenes).toEqual([
      { sequence: 1, prompt: "Silver robot, shot 1", duration: 6.5 },
      { sequence: 2, prompt: "Silver robot, shot 2", duration: 8 },
      { sequence: 3, prompt: "Silver robot, shot 3", duration: 8 },
    ]);
  });

  it("reads JSON in code fences or with prose around it, and a bare array", () => {
    expect(parseScenes(`Here you go:\n\`\`\`json\n${answer([scene(1)])}\n\`\`\`\nEnjoy!`, 1)).toHaveLength(1);
    expect(parseScenes(JSON.stringify([scene(1), scene(2)]), 2)).toHaveLength(2);
    expect(extractJson('{"a": [1, 2]}')).toEqual({ a: [1, 2] });
  });

  it("asks once more, saying what was wrong, when the answer is not the list asked for", async () => {
    const m = model(answer([scene(1), scene(2)]), answer([scene(1), scene(2), scene(3)]));
    const { scenes, attempts } = await writeScenes(m.complete, input);
    expect([scenes.length, attempts]).toEqual([3, 2]);
    expect(m.asked[1]).toContain("It could not be used: it has 2 scenes, not 3");
    expect(m.asked[1]).toContain(scenesPrompt(input));
  });

  it("fails PROVIDER_ERROR when the repaired answer is no better", async () => {
    const m = model("Sure! Scene one: a robot.", answer([scene(1), scene(1), scene(2)]));
    await expect(writeScenes(m.complete, input)).rejects.toMatchObject({ name: "JobFailure", code: "PROVIDER_ERROR", message: expect.stringContaining("same sequence number") });
    expect(m.asked[1]).toContain("the answer holds no JSON");
  });

  it("refuses scenes without a prompt or with a duration that is not a positive number", () => {
    expect(() => parseScenes(answer([{ sequence: 1, prompt: "", duration: 8 }]), 1)).toThrow(/scenes.0.prompt/);
    expect(() => parseScenes(answer([{ sequence: 1, prompt: "x", duration: "8s" }]), 1)).toThrow(/scenes.0.duration/);
    expect(() => parseScenes(answer([{ sequence: 1, prompt: "x", duration: -1 }]), 1)).toThrow(/duration/);
    expect(() => parseScenes('{"scenes": [', 1)).toThrow(/does not parse/);
  });
});
