import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { eraseDetects, type EraseRegion, type VideoDetectTextInput, type VideoEraseInput } from "@cutroom/contracts";
import type { JobContext, JobOutput } from "@cutroom/worker-runtime";
import { runFfmpegArgs } from "@cutroom/worker-runtime/ffmpeg";
import { detectText } from "./detect-text.ts";
import { eraseFfmpegArgs, eraseFilterGraph, planErasures, type Erasure } from "./erase-graph.ts";
import { stem } from "./media.ts";
import type { TextRegion } from "./text-regions.ts";
import { measureVideo } from "./video-input.ts";

/** video.detect-text: the burnt-in text of a video, as regions over time with what they say. */
export async function detectTextHandler(ctx: JobContext<VideoDetectTextInput>): Promise<JobOutput> {
  const { input } = ctx;
  const { source, measured } = await ctx.stage("fetch", async () => {
    const source = await ctx.fetchInput(input.file_id);
    return { source, measured: await measureVideo(source, ctx.limits, ctx.signal) };
  });
  const found = await ctx.stage("detect", async () => {
    const workDir = join(ctx.tmpDir, "samples");
    await mkdir(workDir, { recursive: true });
    return detectText({ inputPath: source.path, workDir, ...measured, sampleFps: input.sample_fps, minConfidence: input.min_confidence, signal: ctx.signal, onProgress: (p) => ctx.progress(5 + p * 0.95) });
  });
  return { files: [], regions: found.regions, samples: found.samples, sample_fps: input.sample_fps, min_confidence: input.min_confidence, ...measured.frame, duration_s: round(measured.duration) };
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/**
 * A detected region as it is erased: grown by a fifth of its height (at least 4 px) so delogo
 * interpolates from background rather than the glyphs' anti-aliased edges, and by another half
 * sample interval each side in time, so the span between a miss and a hit is covered too.
 */
export function detectedErasure(r: TextRegion, interval: number, duration: number): Erasure {
  const pad = Math.max(4, Math.round(r.bbox.height / 5));
  return {
    start_time: round(Math.max(0, r.start_time - interval / 2)),
    end_time: round(Math.min(duration, r.end_time + interval / 2)),
    bbox: { x: Math.max(0, r.bbox.x - pad), y: Math.max(0, r.bbox.y - pad), width: r.bbox.width + 2 * pad, height: r.bbox.height + 2 * pad },
    source: "detected",
    text: r.text,
  };
}

/** video.erase (seed 004's GhostCut): the given boxes, and the text detection finds, erased; protection regions kept. */
export async function eraseHandler(ctx: JobContext<VideoEraseInput>): Promise<JobOutput> {
  const { input } = ctx;
  const detect = eraseDetects(input);
  const { source, measured } = await ctx.stage("fetch", async () => {
    const source = await ctx.fetchInput(input.file_id);
    return { source, measured: await measureVideo(source, ctx.limits, ctx.signal) };
  });
  const given = input.regions.filter((r) => r.type === "erasure").map((r): Erasure => ({ start_time: r.start_time, end_time: Math.min(r.end_time, measured.duration), bbox: r.bbox, source: "given" }));
  const protections: EraseRegion[] = input.regions.filter((r) => r.type === "protection");

  const detected = detect
    ? await ctx.stage("detect", async () => {
        const workDir = join(ctx.tmpDir, "samples");
        await mkdir(workDir, { recursive: true });
        const found = await detectText({ inputPath: source.path, workDir, ...measured, sampleFps: input.sample_fps, minConfidence: input.min_confidence, signal: ctx.signal, onProgress: (p) => ctx.progress(5 + p * 0.4) });
        return found.regions;
      })
    : [];
  const plan = planErasures([...given, ...detected.map((r) => detectedErasure(r, 1 / input.sample_fps, measured.duration))], protections, measured.frame);

  const outputPath = join(ctx.tmpDir, "erased.mp4");
  await ctx.stage("erase", () => {
    const graph = eraseFilterGraph(plan.erase, protections, input.method, measured.frame);
    return runFfmpegArgs(eraseFfmpegArgs({ inputPath: source.path, outputPath, graph, audioCodec: measured.audio ? measured.audio.codec : null }), {
      signal: ctx.signal,
      durationSec: measured.duration,
      onProgress: (p) => ctx.progress((detect ? 45 : 5) + p * (detect ? 0.5 : 0.9)),
    });
  });
  const file = await ctx.stage("upload", () => ctx.uploadOutput(outputPath, `${stem(source.filename, "video")}-erased.mp4`, "video/mp4"));
  return {
    files: [file],
    method: input.method,
    auto_detect: detect,
    erased: plan.erase,
    skipped: plan.skipped,
    protected: protections,
    detected,
    ...measured.frame,
    duration_s: round(measured.duration),
  };
}
