import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VideoColorGradeInput, jobLimits, type JobLimits } from "@cutroom/contracts";
import { isJobFailure } from "@cutroom/worker-runtime";
import { measureFrame, probe, runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colorGrade, combineGrade, type GradeOptions } from "./color-grade.ts";

let dir: string;
let clip: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-grade-"));
  clip = join(dir, "clip.mp4");
  await runFfmpeg((cmd) =>
    cmd
      .input("testsrc2=size=320x240:rate=25:duration=2")
      .inputFormat("lavfi")
      .input("sine=frequency=440:sample_rate=48000:duration=2")
      .inputFormat("lavfi")
      .videoCodec("libx264")
      .audioCodec("aac")
      .outputOptions(["-pix_fmt", "yuv420p", "-shortest"])
      .output(clip),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const options = (o: Record<string, unknown> = {}): GradeOptions => VideoColorGradeInput.parse({ file_id: crypto.randomUUID(), ...o });

async function grade(o: Record<string, unknown> = {}, extra: { input?: { path: string }; lutPath?: string; limits?: JobLimits } = {}) {
  const outputPath = join(dir, `graded-${++n}.mp4`);
  const progress: number[] = [];
  await colorGrade({ input: { path: clip }, outputPath, options: options(o), limits: jobLimits("free"), onProgress: (p) => progress.push(p), ...extra });
  return { outputPath, progress };
}

const warmth = (s: { uavg: number; vavg: number }) => s.vavg - s.uavg;

/** A size-2 .cube LUT; `map` turns an input RGB corner into its output colour. */
async function writeLut(name: string, map: (r: number, g: number, b: number) => [number, number, number]) {
  const rows: string[] = [];
  for (const b of [0, 1]) for (const g of [0, 1]) for (const r of [0, 1]) rows.push(map(r, g, b).join(" "));
  const path = join(dir, name);
  await writeFile(path, `TITLE "test"\nLUT_3D_SIZE 2\n${rows.join("\n")}\n`);
  return path;
}

describe("video.color-grade", () => {
  it("produces an H.264 mp4 as long as the input, with its audio and moov up front", async () => {
    const { outputPath, progress } = await grade();

    const info = await probe(outputPath);
    expect(info.streams.find((s) => s.type === "video")).toMatchObject({ codec: "h264", width: 320, height: 240 });
    expect(info.duration).toBeGreaterThan(1.9);
    expect(info.duration).toBeLessThan(2.2);
    expect(info.streams.find((s) => s.type === "audio")?.codec).toBe("aac");
    const bytes = await readFile(outputPath);
    expect(bytes.indexOf("moov")).toBeLessThan(bytes.indexOf("mdat"));
    expect(progress.at(-1)).toBe(100);
  });

  it("makes the Warm preset warmer than the Cool one", async () => {
    const warm = await measureFrame((await grade({ preset: "Warm" })).outputPath, 1);
    const cool = await measureFrame((await grade({ preset: "Cool" })).outputPath, 1);
    const original = await measureFrame(clip, 1);

    expect(warmth(warm)).toBeGreaterThan(warmth(original) + 3);
    expect(warmth(cool)).toBeLessThan(warmth(original) - 3);
  });

  it("turns the picture grey at saturation 0, brighter at +1 stop and darker at -1", async () => {
    const original = await measureFrame(clip, 1);
    const grey = await measureFrame((await grade({ preset: "Cool", saturation: 0 })).outputPath, 1);
    const base = await measureFrame((await grade({ preset: "Cool" })).outputPath, 1);
    const bright = await measureFrame((await grade({ preset: "Cool", exposure: 1 })).outputPath, 1);
    const dark = await measureFrame((await grade({ preset: "Cool", exposure: -1 })).outputPath, 1);

    expect(original.satavg).toBeGreaterThan(20);
    expect(grey.satavg).toBeLessThan(3);
    // testsrc2 is mostly bright bars that clip when doubled, so +1 stop gains less than -1 loses.
    expect(bright.yavg).toBeGreaterThan(base.yavg + 8);
    expect(dark.yavg).toBeLessThan(base.yavg - 25);
  });

  it("applies a .cube LUT on top of the grade", async () => {
    const invert = await writeLut("invert.cube", (r, g, b) => [1 - r, 1 - g, 1 - b]);
    const plain = await measureFrame((await grade()).outputPath, 1);
    const inverted = await measureFrame((await grade({}, { lutPath: invert })).outputPath, 1);

    // Inverting RGB mirrors limited-range luma around (16 + 235) / 2.
    expect(Math.abs(inverted.yavg + plain.yavg - 251)).toBeLessThan(12);
    expect(Math.abs(inverted.yavg - plain.yavg)).toBeGreaterThan(20);
  });

  it("rejects a file that is not a .cube LUT with INVALID_LUT", async () => {
    const garbage = join(dir, "garbage.cube");
    await writeFile(garbage, "this is not a lut\n1 2\n");
    const truncated = join(dir, "truncated.cube");
    await writeFile(truncated, "LUT_3D_SIZE 2\n0 0 0\n1 1 1\n");

    for (const lutPath of [garbage, truncated]) {
      const err = await grade({}, { lutPath }).catch((e: unknown) => e);
      expect(isJobFailure(err) && err.code).toBe("INVALID_LUT");
    }
  });

  it("keeps only the frames in frame_range, audio included", async () => {
    const { outputPath } = await grade({ frame_range: "10-35" });

    const info = await probe(outputPath);
    expect(info.duration).toBeGreaterThan(0.9);
    expect(info.duration).toBeLessThan(1.15);
    expect(info.streams.some((s) => s.type === "audio")).toBe(true);
  });

  it("fails with INVALID_INPUT when frame_range starts after the video ends", async () => {
    const err = await grade({ frame_range: "500-600" }).catch((e: unknown) => e);
    expect(isJobFailure(err) && err.code).toBe("INVALID_INPUT");
  });

  it("refuses a video longer, or with bigger frames, than the job's limits with LIMIT_EXCEEDED before running ffmpeg", async () => {
    // ffmpeg never started: it would have made the output file and reported progress.
    const refused = async (limits: JobLimits) => {
      const outputPath = join(dir, `refused-${++n}.mp4`);
      const progress: number[] = [];
      const err = await colorGrade({ input: { path: clip }, outputPath, options: options(), limits, onProgress: (p) => progress.push(p) }).catch((e: unknown) => e);
      await expect(access(outputPath)).rejects.toThrow();
      expect(progress).toEqual([]);
      return err;
    };
    const long = await refused({ ...jobLimits("free"), max_media_seconds: 1 });
    expect(long).toMatchObject({ name: "JobFailure", code: "LIMIT_EXCEEDED", retryable: false, message: "the input lasts 2 s; at most 1 s may be processed on the free tier" });
    const big = await refused({ ...jobLimits("pro"), max_output_pixels: 320 * 240 - 1 });
    expect(big).toMatchObject({ code: "LIMIT_EXCEEDED", message: expect.stringContaining("pro tier") });
  });

  it("fails with INVALID_MEDIA for audio-only files and for files that are not media", async () => {
    const audio = join(dir, "voice.wav");
    await runFfmpeg((cmd) => cmd.input("sine=duration=1").inputFormat("lavfi").output(audio));
    const text = join(dir, "notes.txt");
    await writeFile(text, "not a video at all\n".repeat(10));
    const junk = join(dir, "upload.mp4");
    await writeFile(junk, Buffer.alloc(4096, 7));

    for (const path of [audio, text, junk]) {
      const err = await grade({}, { input: { path } }).catch((e: unknown) => e);
      expect(isJobFailure(err) && err.code, path).toBe("INVALID_MEDIA");
    }
  });
});

describe("combineGrade", () => {
  it("adds the sliders to the preset and scales its saturation", () => {
    expect(combineGrade({ preset: "Warm", exposure: 1, contrast: -10, saturation: 50 })).toEqual({
      exposure: 1.1,
      contrast: -5,
      saturation: 55,
      temperature: 0.15,
      tint: 0.02,
    });
    expect(combineGrade({ preset: "Nollywood-Standard", exposure: 3, contrast: 100, saturation: 0 })).toMatchObject({
      exposure: 3,
      contrast: 100,
      saturation: 0,
    });
  });
});
