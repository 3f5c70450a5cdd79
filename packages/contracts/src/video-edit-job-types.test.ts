import { describe, expect, it } from "vitest";
import type { MediaFacts } from "./files.ts";
import { jobTypes, type InputMedia, type JobTypeName } from "./job-types.ts";
import { eraseDetects, fitFrame, thumbnailTimes, VideoEraseInput, VideoTranscodeInput } from "./video-edit-job-types.ts";

const FILE = "6f1c1a52-8a57-4c55-9d3a-6d0a3c0f7f11";
const video = (seconds: number, width = 1920, height = 1080): MediaFacts => ({ width, height, duration_seconds: seconds, frame_rate: 25 });
const box = { x: 10, y: 10, width: 100, height: 40 };

function quote(type: JobTypeName, input: Record<string, unknown>, media: InputMedia) {
  const t = jobTypes[type];
  const parsed = t.input.parse({ file_id: FILE, ...input }) as never;
  const work = t.work(parsed, media);
  return { work, credits: t.cost.estimate(parsed, work) };
}

describe("video.transcode input", () => {
  const ok = (input: Record<string, unknown>) => VideoTranscodeInput.safeParse({ file_id: FILE, ...input }).success;

  it("refuses codecs the container cannot hold, and crf with bitrate or with prores", () => {
    expect(ok({ format: "webm", codec: "h264" })).toBe(false);
    expect(ok({ format: "mp4", codec: "prores" })).toBe(false);
    expect(ok({ format: "mov", codec: "vp9" })).toBe(false);
    expect(ok({ codec: "h264", crf: 20, bitrate_kbps: 900 })).toBe(false);
    expect(ok({ format: "mov", codec: "prores", crf: 20 })).toBe(false);
    expect(ok({ codec: "h264", crf: 60 })).toBe(false);
    expect(ok({ format: "webm", crf: 60 })).toBe(true);
    expect(ok({ format: "mov", codec: "prores" })).toBe(true);
  });

  it("fits a frame inside the maximum with even sides, never enlarging", () => {
    expect(fitFrame({ width: 1920, height: 1080 }, { width: 640 })).toEqual({ width: 640, height: 360 });
    expect(fitFrame({ width: 1920, height: 1080 }, { width: 1000, height: 300 })).toEqual({ width: 532, height: 300 });
    expect(fitFrame({ width: 161, height: 121 }, {})).toEqual({ width: 160, height: 120 });
    expect(fitFrame({ width: 320, height: 240 }, { width: 4000 })).toEqual({ width: 320, height: 240 });
  });

  it("costs 5 credits per started minute, and counts the output frame against the limits", () => {
    expect(quote("video.transcode", {}, { file_id: video(61) }).credits).toBe(10);
    expect(quote("video.transcode", { max_width: 640 }, { file_id: video(10) }).work.output_pixels).toBe(640 * 360);
  });
});

describe("video.erase input", () => {
  it("detects text by default only when no erasure region is given", () => {
    expect(eraseDetects(VideoEraseInput.parse({ file_id: FILE }))).toBe(true);
    expect(eraseDetects(VideoEraseInput.parse({ file_id: FILE, regions: [{ start_time: 0, end_time: 1, bbox: box, type: "protection" }] }))).toBe(true);
    expect(eraseDetects(VideoEraseInput.parse({ file_id: FILE, regions: [{ start_time: 0, end_time: 1, bbox: box }] }))).toBe(false);
  });

  it("refuses a region ending before it starts, and an input with nothing to erase", () => {
    expect(VideoEraseInput.safeParse({ file_id: FILE, regions: [{ start_time: 2, end_time: 1, bbox: box }] }).success).toBe(false);
    expect(VideoEraseInput.safeParse({ file_id: FILE, auto_detect: false }).success).toBe(false);
  });

  it("names a region that starts past the video's end or outside its frame", () => {
    expect(() => quote("video.erase", { regions: [{ start_time: 12, end_time: 13, bbox: box }] }, { file_id: video(10) })).toThrow(
      expect.objectContaining({ code: "INVALID_INPUT", details: { field: "regions.0.start_time", reason: "past the end" } }),
    );
    expect(() => quote("video.erase", { regions: [{ start_time: 0, end_time: 1, bbox: { ...box, x: 2000 } }] }, { file_id: video(10) })).toThrow(
      expect.objectContaining({ code: "INVALID_INPUT", details: { field: "regions.0.bbox", reason: "outside the frame" } }),
    );
  });

  it("costs 20 credits per started minute, 25 with detection; detection alone 5", () => {
    expect(quote("video.erase", { regions: [{ start_time: 0, end_time: 1, bbox: box }] }, { file_id: video(90) }).credits).toBe(40);
    expect(quote("video.erase", {}, { file_id: video(90) }).credits).toBe(50);
    expect(quote("video.detect-text", {}, { file_id: video(30) }).credits).toBe(5);
  });
});

describe("video.thumbnails input", () => {
  it("picks the middle of each equal part, and refuses a time past the end", () => {
    expect(thumbnailTimes({ mode: "evenly_spaced", count: 4, time: undefined }, 2)).toEqual([0.25, 0.75, 1.25, 1.75]);
    expect(() => quote("video.thumbnails", { time: 12 }, { file_id: video(10) })).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
  });

  it("bounds a contact sheet's whole picture and costs 1 credit per started 10 frames", () => {
    const { work, credits } = quote("video.thumbnails", { mode: "contact_sheet", count: 12, columns: 4, width: 200 }, { file_id: video(60) });
    expect(work.output_pixels).toBe(800 * 3 * 112);
    expect(credits).toBe(2);
  });
});
