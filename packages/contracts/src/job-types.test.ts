import { describe, expect, it } from "vitest";
import type { MediaFacts } from "./files.ts";
import { jobTypes, resizedSize, type InputMedia, type JobTypeName } from "./job-types.ts";
import { exceededLimit, jobLimits } from "./jobs.ts";

const FILE = "6f1c1a52-8a57-4c55-9d3a-6d0a3c0f7f11";
const image = (width: number, height: number): MediaFacts => ({ width, height, duration_seconds: null, frame_rate: null });
const video = (seconds: number, width = 1920, height = 1080, frame_rate = 25): MediaFacts => ({ width, height, duration_seconds: seconds, frame_rate });
const audio = (seconds: number): MediaFacts => ({ width: null, height: null, duration_seconds: seconds, frame_rate: null });

/** What job-service does at enqueue: parse, size the work, price it. */
function quote(type: JobTypeName, input: Record<string, unknown>, media: InputMedia) {
  const t = jobTypes[type];
  const parsed = t.input.parse({ file_id: FILE, ...input }) as never;
  const work = t.work(parsed, media);
  return { work, credits: t.cost.estimate(parsed, work) };
}

describe("resizedSize, as sharp resizes", () => {
  it("gives both sides as asked for cover, contain and fill", () => {
    for (const fit of ["cover", "contain", "fill"] as const) {
      expect(resizedSize({ width: 4000, height: 1000 }, { width: 300, height: 300, fit })).toEqual({ width: 300, height: 300 });
    }
  });

  it("keeps the input's aspect when only one side is given, whatever the fit", () => {
    expect(resizedSize({ width: 4000, height: 1000 }, { width: 2000, fit: "cover" })).toEqual({ width: 2000, height: 500 });
    expect(resizedSize({ width: 4000, height: 1000 }, { height: 2000, fit: "inside" })).toEqual({ width: 8000, height: 2000 });
  });

  it("fits inside or around the box for inside and outside", () => {
    expect(resizedSize({ width: 4000, height: 1000 }, { width: 1000, height: 1000, fit: "inside" })).toEqual({ width: 1000, height: 250 });
    expect(resizedSize({ width: 4000, height: 1000 }, { width: 1000, height: 1000, fit: "outside" })).toEqual({ width: 4000, height: 1000 });
  });
});

describe("image work and credits", () => {
  it("sizes a 1×1 PNG asked to become 16384×16384 as 268 megapixels of output: over the free tier, 64 credits", () => {
    const { work, credits } = quote("image.resize", { width: 16384, height: 16384, format: "avif" }, { file_id: image(1, 1) });
    expect(work).toEqual({ input_pixels: 1, output_pixels: 16384 * 16384, media_seconds: 0, output_seconds: 0 });
    expect(credits).toBe(64);
    expect(exceededLimit(work, jobLimits("free"))).toEqual({ limit: "max_output_pixels", value: 16384 * 16384, max: 4096 * 4096, tier: "free" });
    expect(exceededLimit(work, jobLimits("pro"))).toMatchObject({ limit: "max_output_pixels", tier: "pro" });
    expect(exceededLimit(work, jobLimits("enterprise"))).toBeUndefined();
  });

  it("sizes a one-sided resize from the input's aspect: a tall strip asked for a wide width is huge", () => {
    const { work } = quote("image.resize", { width: 16384 }, { file_id: image(10, 1000) });
    expect(work.output_pixels).toBe(16384 * 1638400);
    expect(exceededLimit(work, jobLimits("enterprise"))).toMatchObject({ limit: "max_output_pixels" });
  });

  it("keeps 1 credit for every image up to 2048×2048 and adds one per started 4.2 megapixels", () => {
    expect(quote("image.resize", { width: 320 }, { file_id: image(640, 480) }).credits).toBe(1);
    expect(quote("image.resize", { width: 2048, height: 2048 }, { file_id: image(10, 10) }).credits).toBe(1);
    expect(quote("image.resize", { width: 2048, height: 2049 }, { file_id: image(10, 10) }).credits).toBe(2);
    expect(quote("image.resize", { width: 4096, height: 4096 }, { file_id: image(10, 10) }).credits).toBe(4);
    expect(quote("image.thumbnail", {}, { file_id: image(8000, 6000) })).toEqual({
      work: { input_pixels: 48_000_000, output_pixels: 256 * 256, media_seconds: 0, output_seconds: 0 },
      credits: 1,
    });
  });

  it("bounds the input picture as well as the output", () => {
    const { work } = quote("image.thumbnail", {}, { file_id: image(10000, 10000) });
    expect(exceededLimit(work, jobLimits("free"))).toEqual({ limit: "max_input_pixels", value: 1e8, max: 8192 * 8192, tier: "free" });
    expect(exceededLimit(work, jobLimits("pro"))).toBeUndefined();
  });

  it("refuses with INVALID_INPUT a file whose picture size is unknown (not an image, or stored before measuring)", () => {
    expect(() => quote("image.resize", { width: 10 }, { file_id: audio(3) })).toThrow(expect.objectContaining({ code: "INVALID_INPUT", details: { field: "file_id", reason: "no picture size" } }));
    expect(() => quote("image.resize", { width: 10 }, {})).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
  });
});

describe("video work and credits", () => {
  it("charges 25 credits per started minute of video, 30 with a LUT: a 1-hour video costs 60 times a 1-second one", () => {
    expect(quote("video.color-grade", {}, { file_id: video(1) }).credits).toBe(25);
    expect(quote("video.color-grade", {}, { file_id: video(60.02) }).credits).toBe(25);
    expect(quote("video.color-grade", {}, { file_id: video(61) }).credits).toBe(50);
    expect(quote("video.color-grade", {}, { file_id: video(3600) }).credits).toBe(1500);
    expect(quote("video.color-grade", { lut_file_id: FILE }, { file_id: video(90) }).credits).toBe(60);
  });

  it("charges a frame range for the part it grades, and bounds the whole input's length", () => {
    const { work, credits } = quote("video.color-grade", { frame_range: "0-250" }, { file_id: video(1200) });
    expect(work).toMatchObject({ media_seconds: 1200, output_seconds: 10 });
    expect(credits).toBe(25);
    expect(exceededLimit(work, jobLimits("free"))).toEqual({ limit: "max_media_seconds", value: 1200, max: 600, tier: "free" });
    expect(exceededLimit(work, jobLimits("pro"))).toBeUndefined();
    // At the video's own frame rate: 3000 frames at 50 fps is one minute.
    expect(quote("video.color-grade", { frame_range: "0-3000" }, { file_id: video(600, 1920, 1080, 50) }).work.output_seconds).toBe(60);
  });

  it("refuses a frame range that starts past the end, and a file with no duration", () => {
    expect(() => quote("video.color-grade", { frame_range: "500-600" }, { file_id: video(10) })).toThrow(expect.objectContaining({ code: "INVALID_INPUT", details: { field: "frame_range", reason: "past the end" } }));
    expect(() => quote("video.color-grade", {}, { file_id: image(640, 480) })).toThrow(expect.objectContaining({ code: "INVALID_INPUT", details: { field: "file_id", reason: "no duration" } }));
  });

  it("bounds the frame size by the output picture limit", () => {
    const { work } = quote("video.color-grade", {}, { file_id: video(5, 7680, 4320) });
    expect(exceededLimit(work, jobLimits("free"))).toMatchObject({ limit: "max_output_pixels", value: 7680 * 4320 });
  });
});

describe("audio work and credits", () => {
  it("charges 5 credits per started 5 minutes", () => {
    expect(quote("audio.cleanup", {}, { file_id: audio(4) }).credits).toBe(5);
    expect(quote("audio.cleanup", {}, { file_id: audio(300) }).credits).toBe(5);
    expect(quote("audio.cleanup", {}, { file_id: audio(301) }).credits).toBe(10);
    expect(quote("audio.cleanup", {}, { file_id: audio(3600) }).credits).toBe(60);
  });

  it("bounds the length by the tier", () => {
    const { work } = quote("audio.cleanup", {}, { file_id: audio(3601) });
    expect(exceededLimit(work, jobLimits("pro"))).toEqual({ limit: "max_media_seconds", value: 3601, max: 3600, tier: "pro" });
    expect(exceededLimit(work, jobLimits("enterprise"))).toBeUndefined();
  });
});

it("says each type's price rule", () => {
  // Per started unit of work (minutes, megapixels, tokens), or per item for the flat-priced (a model rigged, a screenplay).
  for (const t of Object.values(jobTypes)) expect(t.cost.describe).toMatch(/\d credits? per /);
});
