import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { PixelBox } from "@cutroom/contracts";
import { runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { ocrImage } from "@cutroom/worker-runtime/tesseract";
import { mergeSamples, type SampledWord, type TextRegion } from "./text-regions.ts";

/** Tesseract reads glyphs best at 20+ pixels tall: small videos are enlarged (up to 3×) before OCR. */
export const ocrScale = (height: number) => Math.min(3, Math.max(1, Math.floor(480 / height)));

/** Seconds of video sampled at a time: the frames of one window are read and deleted before the next, so a long video never fills the disk. */
export const SAMPLE_WINDOW_SECONDS = 60;

/**
 * The ffmpeg command (without `ffmpeg`) that samples `sampleFps` frames a second of the window
 * (the whole video when absent) as grey PNGs `sample-00001.png`… in `outDir`, enlarged `scale`
 * times: sample n (from 1) shows time window.start + (n-1)/sampleFps.
 */
export function sampleFramesFfmpegArgs(inputPath: string, outDir: string, sampleFps: number, scale: number, window?: { start: number; seconds: number }): string[] {
  // round=up: sample n is the last frame at or before its time (the default takes one up to half an interval later).
  const filters = [`fps=${sampleFps}:round=up`, ...(scale > 1 ? [`scale=iw*${scale}:ih*${scale}:flags=bicubic`] : []), "format=gray"];
  const range = window ? ["-ss", String(window.start), "-t", String(window.seconds)] : [];
  return ["-v", "error", ...range, "-i", inputPath, "-map", "0:v:0", "-an", "-vf", filters.join(","), "-f", "image2", "-y", join(outDir, "sample-%05d.png")];
}

// Strokes and specks tesseract sometimes calls words: a word must have a letter or a digit.
const wordLike = /[\p{L}\p{N}]/u;

export interface DetectTextRun {
  inputPath: string;
  /** An empty folder for the sampled frames. */
  workDir: string;
  frame: { width: number; height: number };
  duration: number;
  sampleFps: number;
  minConfidence: number;
  /** SAMPLE_WINDOW_SECONDS unless told. */
  windowSeconds?: number;
  signal?: AbortSignal;
  /** 0–100 over the sampling and the OCR. */
  onProgress?: (percent: number) => void;
}

/** Burnt-in text of a video: frames sampled with ffmpeg a window at a time, read by tesseract, boxes merged over time. */
export async function detectText(run: DetectTextRun): Promise<{ regions: TextRegion[]; samples: number }> {
  const scale = ocrScale(run.frame.height);
  const samples: { time: number; words: SampledWord[] }[] = [];
  const window = run.windowSeconds ?? SAMPLE_WINDOW_SECONDS;
  for (let start = 0; start < run.duration; start += window) {
    const seconds = Math.min(window, run.duration - start);
    await runFfmpegArgs(sampleFramesFfmpegArgs(run.inputPath, run.workDir, run.sampleFps, scale, { start, seconds }), { signal: run.signal });
    const files = (await readdir(run.workDir)).filter((f) => /^sample-\d+\.png$/.test(f)).sort();
    // The fps filter may close a window with a sample at its very end: that one is the next window's first.
    const wanted = Math.max(1, Math.ceil(seconds * run.sampleFps - 1e-6));
    for (const [i, file] of files.entries()) {
      const path = join(run.workDir, file);
      if (i < wanted) {
        const words = await ocrImage(path, { signal: run.signal });
        samples.push({
          time: Math.round((start + i / run.sampleFps) * 1000) / 1000,
          words: words
            .filter((w) => w.confidence >= run.minConfidence && wordLike.test(w.text))
            .map((w) => ({ text: w.text, confidence: w.confidence, box: toFrame(w, scale, run.frame) })),
        });
      }
      await rm(path, { force: true });
      run.onProgress?.((100 * (start + (seconds * Math.min(i + 1, wanted)) / wanted)) / run.duration);
    }
  }
  return { regions: mergeSamples(samples, 1 / run.sampleFps, run.duration), samples: samples.length };
}

/** A box on an enlarged sample back in the video's pixels, grown outwards to whole pixels and kept inside the frame. */
function toFrame(b: PixelBox, scale: number, frame: { width: number; height: number }): PixelBox {
  const x = Math.max(0, Math.floor(b.x / scale));
  const y = Math.max(0, Math.floor(b.y / scale));
  const r = Math.min(frame.width, Math.ceil((b.x + b.width) / scale));
  const btm = Math.min(frame.height, Math.ceil((b.y + b.height) / scale));
  return { x, y, width: Math.max(1, r - x), height: Math.max(1, btm - y) };
}
