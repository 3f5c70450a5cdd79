import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { PixelBox } from "@cutroom/contracts";
import { runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { ocrImage } from "@cutroom/worker-runtime/tesseract";
import { mergeSamples, type SampledWord, type TextRegion } from "./text-regions.ts";

/** Tesseract reads glyphs best at 20+ pixels tall: small videos are enlarged (up to 3×) before OCR. */
export const ocrScale = (height: number) => Math.min(3, Math.max(1, Math.floor(480 / height)));

/**
 * The ffmpeg command (without `ffmpeg`) that samples `sampleFps` frames a second as grey PNGs
 * `sample-00001.png`… in `outDir`, enlarged `scale` times: sample n (from 1) shows time (n-1)/sampleFps.
 */
export function sampleFramesFfmpegArgs(inputPath: string, outDir: string, sampleFps: number, scale: number): string[] {
  // round=up: sample n is the last frame at or before (n-1)/sampleFps (the default takes one up to half an interval later).
  const filters = [`fps=${sampleFps}:round=up`, ...(scale > 1 ? [`scale=iw*${scale}:ih*${scale}:flags=bicubic`] : []), "format=gray"];
  return ["-v", "error", "-i", inputPath, "-map", "0:v:0", "-an", "-vf", filters.join(","), "-f", "image2", "-y", join(outDir, "sample-%05d.png")];
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
  signal?: AbortSignal;
  /** 0–100 over sampling (first fifth) and OCR. */
  onProgress?: (percent: number) => void;
}

/** Burnt-in text of a video: frames sampled with ffmpeg, read by tesseract, boxes merged over time. */
export async function detectText(run: DetectTextRun): Promise<{ regions: TextRegion[]; samples: number }> {
  const scale = ocrScale(run.frame.height);
  await runFfmpegArgs(sampleFramesFfmpegArgs(run.inputPath, run.workDir, run.sampleFps, scale), {
    signal: run.signal,
    durationSec: run.duration,
    onProgress: (p) => run.onProgress?.(p * 0.2),
  });
  const files = (await readdir(run.workDir)).filter((f) => /^sample-\d+\.png$/.test(f)).sort();
  const samples: { time: number; words: SampledWord[] }[] = [];
  for (const [i, file] of files.entries()) {
    const words = await ocrImage(join(run.workDir, file), { signal: run.signal });
    samples.push({
      time: i / run.sampleFps,
      words: words
        .filter((w) => w.confidence >= run.minConfidence && wordLike.test(w.text))
        .map((w) => ({ text: w.text, confidence: w.confidence, box: toFrame(w, scale, run.frame) })),
    });
    run.onProgress?.(20 + (80 * (i + 1)) / files.length);
  }
  return { regions: mergeSamples(samples, 1 / run.sampleFps, run.duration), samples: files.length };
}

/** A box on an enlarged sample back in the video's pixels, grown outwards to whole pixels and kept inside the frame. */
function toFrame(b: PixelBox, scale: number, frame: { width: number; height: number }): PixelBox {
  const x = Math.max(0, Math.floor(b.x / scale));
  const y = Math.max(0, Math.floor(b.y / scale));
  const r = Math.min(frame.width, Math.ceil((b.x + b.width) / scale));
  const btm = Math.min(frame.height, Math.ceil((b.y + b.height) / scale));
  return { x, y, width: Math.max(1, r - x), height: Math.max(1, btm - y) };
}
