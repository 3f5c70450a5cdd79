import { describe, expect, it } from "vitest";
import { AppError } from "./errors.ts";
import type { MediaFacts } from "./files.ts";
import { jobTypes, planSegments, VideoLipsyncInput } from "./job-types.ts";
import { exceededLimit, jobLimits } from "./jobs.ts";

const video = (seconds: number): MediaFacts => ({ width: 160, height: 120, duration_seconds: seconds, frame_rate: 25 });
const audio = (seconds: number): MediaFacts => ({ width: null, height: null, duration_seconds: seconds, frame_rate: null });
const id = (n: number) => `00000000-0000-4000-8000-00000000000${n}`;
const lipsync = jobTypes["video.lipsync"];

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error("no error thrown");
}

describe("video.lipsync's segments", () => {
  it("plans segments in video order, each audio crop cut at its segment's length", () => {
    const input = VideoLipsyncInput.parse({
      file_id: id(1),
      segments: [
        { start_time: 2, end_time: 3, audio_file_id: id(2), audio_start: 0.5 },
        { start_time: 0, end_time: 1, audio_file_id: id(3) },
      ],
    });
    expect(planSegments(input, 3, (i) => [4, 0.6][i]!)).toEqual([
      { index: 1, start: 0, end: 1, audioStart: 0, audioSeconds: 0.6 },
      { index: 0, start: 2, end: 3, audioStart: 0.5, audioSeconds: 1 },
    ]);
  });

  it("refuses a bad segment with INVALID_SEGMENT_CONFIG naming its index: end before start, past the video, overlap, audio crop outside the audio", () => {
    const check = (segments: unknown[], audioSeconds = 2) => {
      const input = VideoLipsyncInput.parse({ file_id: id(1), segments });
      return refusal(() => planSegments(input, 3, () => audioSeconds));
    };
    const seg = (start_time: number, end_time: number, extra = {}) => ({ start_time, end_time, audio_file_id: id(2), ...extra });
    expect(check([seg(0, 1), seg(2, 1.5)])).toMatchObject({ code: "INVALID_SEGMENT_CONFIG", status: 422, details: { segment_index: 1, reason: "end before start" } });
    expect(check([seg(2, 3.5)])).toMatchObject({ details: { segment_index: 0, reason: "outside the video" } });
    expect(check([seg(1, 2.5), seg(0, 1.5)])).toMatchObject({ details: { segment_index: 0, reason: "overlap", overlaps: 1 } });
    expect(check([seg(0, 1), seg(1, 2, { audio_start: 1, audio_end: 2.5 })])).toMatchObject({ details: { segment_index: 1, reason: "outside the audio" } });
    expect(check([seg(0, 1, { audio_start: 1, audio_end: 0.5 })])).toMatchObject({ details: { segment_index: 0, reason: "audio end before start" } });
    expect(() => planSegments(VideoLipsyncInput.parse({ file_id: id(1), segments: [seg(0, 1), seg(1, 2)] }), 3, () => 2)).not.toThrow();
  });

  it("counts its segments against the tier: 3 on free, 10 on pro, 50 on enterprise", () => {
    const segments = Array.from({ length: 4 }, (_, i) => ({ start_time: i * 0.5, end_time: i * 0.5 + 0.5, audio_file_id: id(2) }));
    const input = VideoLipsyncInput.parse({ file_id: id(1), segments, mode: "dub" });
    const media = { file_id: video(3), ...Object.fromEntries(segments.map((_, i) => [`segments.${i}.audio_file_id`, audio(1)])) };
    const work = lipsync.work(input, media);
    expect(work.segments).toBe(4);
    expect(exceededLimit(work, jobLimits("free"))).toEqual({ limit: "max_segments", value: 4, max: 3, tier: "free" });
    expect(exceededLimit(work, jobLimits("pro"))).toBeUndefined();
    expect(jobLimits("enterprise").max_segments).toBe(50);
  });

  it("prices per started minute of segments, and asks for the lip-sync model only in lipsync mode", () => {
    const input = (mode: string) => VideoLipsyncInput.parse({ file_id: id(1), mode, segments: [{ start_time: 0, end_time: 61, audio_file_id: id(2) }] });
    const work = { input_pixels: 0, output_pixels: 0, media_seconds: 70, output_seconds: 70 };
    expect(lipsync.cost.estimate(input("lipsync"), work)).toBe(40);
    expect(lipsync.cost.estimate(input("dub"), work)).toBe(10);
    expect(lipsync.models!(input("lipsync"))).toEqual([{ jobType: "video.lipsync", quality: "fast" }]);
    expect(lipsync.models!(input("dub"))).toEqual([]);
  });
});
