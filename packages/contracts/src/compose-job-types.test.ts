import { describe, expect, it } from "vitest";
import { composeFrame } from "./compose-job-types.ts";
import { jobTypes, type InputMedia, type JobTypeName } from "./job-types.ts";

const FILE = "6f1c1a52-8a57-4c55-9d3a-6d0a3c0f7f11";
const video = (seconds: number, width = 160, height = 120) => ({ width, height, duration_seconds: seconds, frame_rate: 25 });
const image = (width = 80, height = 60) => ({ width, height, duration_seconds: null, frame_rate: null });
const audio = (seconds: number) => ({ width: null, height: null, duration_seconds: seconds, frame_rate: null });

function quote(type: JobTypeName, input: Record<string, unknown>, media: InputMedia) {
  const t = jobTypes[type];
  const parsed = t.input.parse(input) as never;
  const work = t.work(parsed, media);
  return { work, credits: t.cost.estimate(parsed, work) };
}

describe("video.compose and audio.mix job types", () => {
  it("video.compose: 20 credits per started minute of the composition, the clips' sum less the crossfades", () => {
    const media = { "clips.0.file_id": video(40), "clips.1.file_id": image(), "clips.2.file_id": video(30) };
    const clips = [{ file_id: FILE, trim_start: 10 }, { file_id: FILE, duration: 10 }, { file_id: FILE }];
    expect(quote("video.compose", { clips }, media)).toMatchObject({ credits: 40, work: { output_seconds: 70 } });
    expect(quote("video.compose", { clips, transition: "crossfade", transition_duration: 5 }, media)).toMatchObject({ credits: 20, work: { output_seconds: 60 } });
    expect(quote("video.compose", { clips: [{ file_id: FILE }] }, { "clips.0.file_id": image() }).work.output_seconds).toBe(3);
  });

  it("video.compose names its files in lists and says which kinds each takes", () => {
    expect(jobTypes["video.compose"].fileFields).toEqual(["clips[].file_id", "image_overlays[].file_id", "audio[].file_id"]);
    expect(jobTypes["video.compose"].fileKinds?.["clips[].file_id"]).toEqual(["video", "image"]);
  });

  it("video.compose refuses a trim past the clip's end, a crossfade as long as a clip, and an audio file as a clip", () => {
    const fail = (input: Record<string, unknown>, media: InputMedia) => {
      try {
        quote("video.compose", input, media);
      } catch (err) {
        return (err as { code: string; details: unknown }).details;
      }
      return undefined;
    };
    expect(fail({ clips: [{ file_id: FILE, trim_start: 12 }] }, { "clips.0.file_id": video(10) })).toMatchObject({ field: "clips.0.trim_start" });
    expect(fail({ clips: [{ file_id: FILE }, { file_id: FILE, duration: 1 }], transition: "crossfade", transition_duration: 1 }, { "clips.0.file_id": video(3), "clips.1.file_id": image() })).toMatchObject({
      field: "clips.1",
      reason: "shorter than the transition",
    });
    expect(fail({ clips: [{ file_id: FILE }] }, { "clips.0.file_id": audio(3) })).toMatchObject({ field: "clips.0.file_id" });
  });

  it("video.compose's frame: width/height, else the aspect ratio at the first clip's height, else the first clip's size made even", () => {
    expect(composeFrame({ width: 640, height: 360 }, { width: 100, height: 100 })).toEqual({ width: 640, height: 360 });
    expect(composeFrame({ aspect_ratio: "9:16" }, { width: 1920, height: 1080 })).toEqual({ width: 608, height: 1080 });
    expect(composeFrame({}, { width: 161, height: 121 })).toEqual({ width: 162, height: 122 });
    expect(jobTypes["video.compose"].input.safeParse({ clips: [{ file_id: FILE }], width: 640 }).success).toBe(false);
    expect(jobTypes["video.compose"].input.safeParse({ clips: [{ file_id: FILE }], text_overlays: [{ text: "x", duration: 1, color: "red:x=1" }] }).success).toBe(false);
  });

  it("audio.mix: as long as the latest end on the timeline, 2 credits per started minute", () => {
    const media = { "tracks.0.file_id": audio(50), "tracks.1.file_id": audio(30) };
    expect(quote("audio.mix", { tracks: [{ file_id: FILE }, { file_id: FILE, start: 45 }] }, media)).toMatchObject({ credits: 4, work: { output_seconds: 75, media_seconds: 80 } });
    expect(jobTypes["audio.mix"].input.parse({ tracks: [{ file_id: FILE }] })).toMatchObject({ format: "wav", loudness: -16 });
  });
});
