import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jobLimits, type MediaFacts } from "@cutroom/contracts";
import { afterAll, describe, expect, it } from "vitest";
import { measureVideo } from "./video-input.ts";

const dir = mkdtempSync(join(tmpdir(), "video-input-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// What storage records of a 2 s 320×240 clip with AAC sound when it stores it.
const stored: MediaFacts = { width: 320, height: 240, duration_seconds: 2, frame_rate: 25, video_codec: "h264", audio_codec: "aac", has_audio: true, has_alpha: false };
const missing = join(dir, "never-written.mp4");

describe("measureVideo", () => {
  it("takes what storage measured when it says all a video job needs, without reading the file", async () => {
    // The file is not there: a probe would fail the job as INVALID_MEDIA.
    expect(await measureVideo({ path: missing, media: stored }, jobLimits("free"))).toEqual({ frame: { width: 320, height: 240 }, duration: 2, fps: 25, audio: { codec: "aac" } });
    expect(await measureVideo({ path: missing, media: { ...stored, has_audio: false, audio_codec: null, frame_rate: null } }, jobLimits("free"))).toEqual({
      frame: { width: 320, height: 240 },
      duration: 2,
      fps: 25,
      audio: undefined,
    });
  });

  it("holds storage's facts to the job's limits as it holds a probe's", async () => {
    const long = { ...stored, duration_seconds: jobLimits("free").max_media_seconds + 1 };
    await expect(measureVideo({ path: missing, media: long }, jobLimits("free"))).rejects.toMatchObject({ code: "LIMIT_EXCEEDED", message: expect.stringContaining("the input lasts") });
    const wide = { ...stored, width: 16384, height: 8192 };
    await expect(measureVideo({ path: missing, media: wide }, jobLimits("free"))).rejects.toMatchObject({ code: "LIMIT_EXCEEDED", message: expect.stringContaining("the input picture") });
    // 6000×6000 may be read on the free tier but not written: a job that makes no frame of its size (thumbnails) may take it.
    const big = { ...stored, width: 6000, height: 6000 };
    await expect(measureVideo({ path: missing, media: big }, jobLimits("free"))).rejects.toMatchObject({ code: "LIMIT_EXCEEDED", message: expect.stringContaining("the output picture") });
    expect(await measureVideo({ path: missing, media: big }, jobLimits("free"), undefined, 0)).toMatchObject({ frame: { width: 6000, height: 6000 } });
  });

  it("probes the file when storage's facts are not a video's whole story", async () => {
    const clip = join(dir, "clip.mp4");
    execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1", "-pix_fmt", "yuv420p", clip]);
    const partial: (MediaFacts | undefined)[] = [
      undefined,
      // An image's facts, or ones recorded before sound and codecs were.
      { ...stored, duration_seconds: null, frame_rate: null },
      { width: 320, height: 240, duration_seconds: 2, frame_rate: 25 },
      { ...stored, has_audio: null, audio_codec: null },
    ];
    for (const media of partial) {
      expect(await measureVideo({ path: clip, media }, jobLimits("free"))).toEqual({ frame: { width: 160, height: 120 }, duration: expect.closeTo(1, 1), fps: 10, audio: undefined });
      await expect(measureVideo({ path: missing, media }, jobLimits("free"))).rejects.toMatchObject({ code: "INVALID_MEDIA" });
    }
  });
});
