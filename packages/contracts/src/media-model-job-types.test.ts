import { describe, expect, it } from "vitest";
import type { MediaFacts } from "./files.ts";
import { generatedVideoFrame, jobTypes, nearestAspectRatio, type InputMedia, type JobTypeName } from "./job-types.ts";

const FILE = "6f1c1a52-8a57-4c55-9d3a-6d0a3c0f7f11";
const image = (width: number, height: number): MediaFacts => ({ width, height, duration_seconds: null, frame_rate: null });
const video = (seconds: number, width = 1920, height = 1080, frame_rate = 25): MediaFacts => ({ width, height, duration_seconds: seconds, frame_rate });

function quote(type: JobTypeName, input: Record<string, unknown>, media: InputMedia = {}) {
  const t = jobTypes[type];
  const parsed = t.input.parse(input) as never;
  const work = t.work(parsed, media);
  return { parsed: parsed as Record<string, unknown>, work, credits: t.cost.estimate(parsed, work), models: t.models?.(parsed) };
}

describe("video.generate", () => {
  it("charges per second of video by quality, and one more credit to enhance the prompt", () => {
    expect(quote("video.generate", { prompt: "a fox", duration_s: 4 }).credits).toBe(20);
    expect(quote("video.generate", { prompt: "a fox", duration_s: 4, quality: "premium" }).credits).toBe(48);
    expect(quote("video.generate", { prompt: "a fox", duration_s: 4, enhance_prompt: true }).credits).toBe(21);
  });

  it("sizes a 16:9 480p frame by default and a 720p one at high quality", () => {
    expect(quote("video.generate", { prompt: "a fox" }).work).toEqual({ input_pixels: 0, output_pixels: 832 * 480, media_seconds: 0, output_seconds: 5 });
    expect(quote("video.generate", { prompt: "a fox", quality: "high", aspect_ratio: "9:16" }).work.output_pixels).toBe(720 * 1280);
  });

  it("runs image-to-video from a start image, in the image's nearest aspect ratio", () => {
    const { work, models } = quote("video.generate", { prompt: "a fox", image_file_id: FILE }, { image_file_id: image(1080, 1920) });
    expect(work).toMatchObject({ input_pixels: 1080 * 1920, output_pixels: 480 * 832 });
    expect(models).toEqual([{ jobType: "video.generate", quality: "fast", variant: "i2v" }]);
    expect(generatedVideoFrame({ quality: "fast" }, { width: 1000, height: 760 })).toEqual({ aspect_ratio: "4:3", width: 640, height: 480 });
    expect(nearestAspectRatio({ width: 1920, height: 1080 })).toBe("16:9");
  });

  it("names the language model too when the prompt is enhanced", () => {
    expect(quote("video.generate", { prompt: "a fox", enhance_prompt: true, quality: "high" }).models).toEqual([
      { jobType: "video.generate", quality: "high", variant: "wan" },
      { jobType: "prompt.enhance", quality: "fast" },
    ]);
  });

  it("refuses lengths past 10 seconds and reference images for wan", () => {
    expect(jobTypes["video.generate"].input.safeParse({ prompt: "a fox", duration_s: 11 }).success).toBe(false);
    const refs = jobTypes["video.generate"].input.safeParse({ prompt: "a fox", reference_file_ids: [FILE] });
    expect(refs.success).toBe(false);
    expect(refs.error?.issues[0]).toMatchObject({ path: ["reference_file_ids"], message: expect.stringContaining("image_file_id") });
  });
});

describe("image.remove-background", () => {
  it("charges 3 credits per started 4.2 megapixels with the model, 1 with the chroma key", () => {
    expect(quote("image.remove-background", { file_id: FILE }, { file_id: image(3000, 2000) }).credits).toBe(6);
    expect(quote("image.remove-background", { file_id: FILE, method: "chroma_key" }, { file_id: image(3000, 2000) }).credits).toBe(2);
  });

  it("needs the model unless the chroma key is asked for, which runs locally", () => {
    expect(quote("image.remove-background", { file_id: FILE }, { file_id: image(10, 10) }).models).toEqual([{ jobType: "image.remove-background", quality: "fast" }]);
    expect(quote("image.remove-background", { file_id: FILE, method: "chroma_key" }, { file_id: image(10, 10) }).models).toEqual([
      { jobType: "image.remove-background", quality: "green-screen" },
    ]);
  });
});

describe("video.roto", () => {
  it("takes seed 000's payload", () => {
    const { parsed } = quote(
      "video.roto",
      { file_id: FILE, frame_range: "0-100", description: "Track the person walking", preset: "Track Person", tightness: 75, smoothing: 60, output_format: "video_alpha" },
      { file_id: video(10) },
    );
    expect(parsed).toMatchObject({ tightness: 75, smoothing: 60, alpha_codec: "prores_4444", quality: "fast" });
  });

  it("charges 2 credits per started second tracked: the frame range when given", () => {
    expect(quote("video.roto", { file_id: FILE, description: "the dog" }, { file_id: video(10) }).credits).toBe(20);
    expect(quote("video.roto", { file_id: FILE, description: "the dog", frame_range: "0-50" }, { file_id: video(10) }).credits).toBe(4);
  });

  it("refuses sliders out of 0–100 and unknown presets", () => {
    const input = jobTypes["video.roto"].input;
    expect(input.safeParse({ file_id: FILE, description: "x", tightness: 101 }).success).toBe(false);
    expect(input.safeParse({ file_id: FILE, description: "x", preset: "Track Cat" }).success).toBe(false);
    expect(input.safeParse({ file_id: FILE, description: "" }).success).toBe(false);
  });
});

describe("model.rig", () => {
  it("takes seed 000's auto-rigger payload and costs 20 credits", () => {
    const { parsed, credits, models } = quote("model.rig", { file_id: FILE, rig_type: "Quadruped", joint_size: 50, ik_fk: 75 });
    expect(parsed).toMatchObject({ rig_type: "Quadruped", joint_size: 50, ik_fk: 75 });
    expect(credits).toBe(20);
    expect(models).toEqual([{ jobType: "model.rig", quality: "fast" }]);
    expect(jobTypes["model.rig"].input.safeParse({ file_id: FILE, rig_type: "Octopus" }).success).toBe(false);
  });
});
