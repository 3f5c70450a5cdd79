import { describe, expect, it } from "vitest";
import { jobTypes, speechSeconds, type JobTypeName } from "./job-types.ts";

const FILE = "6f1c1a52-8a57-4c55-9d3a-6d0a3c0f7f11";

function quote(type: JobTypeName, input: Record<string, unknown>) {
  const t = jobTypes[type];
  const parsed = t.input.parse(input) as never;
  const work = t.work(parsed, {});
  return { parsed: parsed as Record<string, unknown>, work, credits: t.cost.estimate(parsed, work), models: t.models?.(parsed) };
}

describe("text and speech job types", () => {
  it("text.generate: 1 credit per started 2,000 tokens of prompt and answer, 3 on the large model; runs text.generate's model at the quality asked", () => {
    expect(quote("text.generate", { prompt: "Hello" })).toMatchObject({ credits: 1, models: [{ jobType: "text.generate", quality: "fast" }] });
    expect(quote("text.generate", { prompt: "x".repeat(8000), max_tokens: 1 }).credits).toBe(2); // 2,000 prompt tokens + 1
    expect(quote("text.generate", { prompt: "Hello", max_tokens: 4096, quality: "premium" }).credits).toBe(9);
    expect(jobTypes["text.generate"].input.safeParse({ prompt: "Hi", max_tokens: 5000 }).success).toBe(false);
    expect(jobTypes["text.generate"].input.safeParse({ prompt: "Hi", temperature: 2.5 }).success).toBe(false);
  });

  it("text.scenes: 1 credit per started 5 scenes, 1 to 20 scenes, 8 s each by default", () => {
    expect(quote("text.scenes", { concept_prompt: "Robot exploring Austin" })).toMatchObject({ credits: 1, parsed: { num_scenes: 4, scene_duration: 8 } });
    expect(quote("text.scenes", { concept_prompt: "Robot", num_scenes: 11, quality: "high" }).credits).toBe(9);
    expect(jobTypes["text.scenes"].input.safeParse({ concept_prompt: "Robot", num_scenes: 21 }).success).toBe(false);
  });

  it("text.script-analysis needs only the local breakdown engine, so it runs with no provider; 2 credits with notes, 1 without", () => {
    expect(quote("text.script-analysis", { file_id: FILE })).toMatchObject({ credits: 2, models: [{ jobType: "text.script-analysis", quality: "breakdown" }] });
    expect(quote("text.script-analysis", { file_id: FILE, quality: "premium" }).credits).toBe(5);
    expect(quote("text.script-analysis", { file_id: FILE, notes: false }).credits).toBe(1);
    expect(jobTypes["text.script-analysis"].fileFields).toEqual(["file_id"]);
  });

  it("audio.tts: text up to 5,000 characters, Kokoro-style voices, 1 credit per started minute of speech locally and 3 with the provider's voices", () => {
    const words = (n: number) => Array(n).fill("word").join(" ");
    expect(quote("audio.tts", { text: words(150) })).toMatchObject({ credits: 1, work: { output_seconds: 60 }, models: [{ jobType: "audio.tts", quality: "fast" }] });
    expect(quote("audio.tts", { text: words(153) }).credits).toBe(2); // 61.2 s
    expect(quote("audio.tts", { text: words(150), speed: 2, quality: "high" }).credits).toBe(3);
    expect(jobTypes["audio.tts"].input.safeParse({ text: "x".repeat(5001) }).success).toBe(false);
    expect(jobTypes["audio.tts"].input.safeParse({ text: "hi", voice: "bm_george" }).success).toBe(true);
    expect(jobTypes["audio.tts"].input.safeParse({ text: "hi", voice: "en-us" }).success).toBe(false);
    expect(jobTypes["audio.tts"].input.safeParse({ text: "hi", format: "ogg" }).success).toBe(false);
  });

  it("times speech at 150 words a minute, counting a word per 6 characters for text without spaces", () => {
    expect(speechSeconds("one two three", 1)).toBeCloseTo(1.2);
    expect(speechSeconds("one two three", 2)).toBeCloseTo(0.6);
    expect(speechSeconds("这是一个没有空格的句子这是一个没有空格的句子", 1)).toBeCloseTo(1.6); // 22 characters: 4 words
  });

  it("runs the text types on the image queue (worker-image) and speech on the audio queue", () => {
    expect([jobTypes["text.generate"].queue, jobTypes["text.scenes"].queue, jobTypes["text.script-analysis"].queue, jobTypes["audio.tts"].queue]).toEqual(["image", "image", "image", "audio"]);
  });
});
