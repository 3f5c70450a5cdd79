import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detectText, ocrScale, sampleFramesFfmpegArgs } from "./detect-text.ts";

let dir: string;
let clip: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-detect-"));
  clip = join(dir, "sale.mp4");
  execFileSync("ffmpeg", [
    "-v", "error", "-f", "lavfi", "-i", "color=c=0x204060:s=160x120:rate=25:duration=3",
    "-vf", "drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:text=SALE:fontsize=28:fontcolor=white:x=30:y=40:enable='between(t,0.9,2.1)'",
    "-c:v", "libx264", "-pix_fmt", "yuv420p", clip,
  ]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("sampleFramesFfmpegArgs", () => {
  it("samples at the asked rate, enlarged for OCR, one window at a time", () => {
    expect(ocrScale(120)).toBe(3);
    expect(ocrScale(1080)).toBe(1);
    const args = sampleFramesFfmpegArgs("in.mp4", "/s", 2, 3, { start: 60, seconds: 60 });
    expect(args.join(" ")).toContain("-ss 60 -t 60 -i in.mp4");
    expect(args[args.indexOf("-vf") + 1]).toBe("fps=2:round=up,scale=iw*3:ih*3:flags=bicubic,format=gray");
  });
});

describe("detectText", () => {
  it.each([60, 1])("finds the text at its place and time whatever the sampling window (%i s), and leaves no frames behind", async (windowSeconds) => {
    const workDir = join(dir, `w${windowSeconds}`);
    await mkdir(workDir);
    const found = await detectText({ inputPath: clip, workDir, frame: { width: 160, height: 120 }, duration: 3, sampleFps: 2, minConfidence: 60, windowSeconds });
    expect(found.samples).toBe(6);
    expect(found.regions).toEqual([expect.objectContaining({ text: "SALE", start_time: 0.75, end_time: 2.25 })]);
    const { bbox } = found.regions[0]!;
    expect(Math.abs(bbox.x - 31)).toBeLessThanOrEqual(3);
    expect(Math.abs(bbox.y - 41)).toBeLessThanOrEqual(4);
    expect(await readdir(workDir)).toEqual([]);
  });
});
