import { stat } from "node:fs/promises";
import { join } from "node:path";
import { isAppError, planSegments, type PlannedSegment, type VideoLipsyncInput } from "@cutroom/contracts";
import { checkLimits, JobFailure, type InputFile, type JobContext, type JobOutput } from "@cutroom/worker-runtime";
import { probe, runFfmpegArgs, type ProbeResult } from "@cutroom/worker-runtime/ffmpeg";
import { eraseFilterGraph, planErasures, type SkippedErasure } from "./erase-graph.ts";
import { assembleArgs, partsOf, segmentAudioArgs, segmentVideoArgs } from "./lipsync-graph.ts";
import { stem, videoStreamOf } from "./media.ts";

/** A lip-synced clip may fall short of its segment by this much (its last frame) before it is refused. */
const SHORT_TOLERANCE_S = 0.25;
/** The result's length may differ from the source's by this much (a frame at 10 fps) before something is wrong. */
const LENGTH_TOLERANCE_S = 0.1;

/**
 * video.lipsync (seed 004's pro-sync): each segment's audio is cut from its file and padded to the
 * segment's length; in lipsync mode the segment's pictures and that audio go to the catalog's
 * lip-sync model; then the segments and the untouched spans between them are joined into one video
 * of the source's length, progress and a log line per segment.
 */
export async function lipsync(ctx: JobContext<VideoLipsyncInput>): Promise<JobOutput> {
  const input = ctx.input;
  const { video, info, frame, audios } = await ctx.stage("fetch", async () => {
    const video = await ctx.fetchInput(input.file_id);
    const info = await probeOrFail(ctx, video.path, "file_id is not a video we can read");
    const frame = videoStreamOf(info);
    if (!frame?.width || !frame.height || info.duration === null) throw new JobFailure("INVALID_MEDIA", "file_id is not a video we can read");
    const pixels = frame.width * frame.height;
    checkLimits(ctx.limits, { input_pixels: pixels, output_pixels: pixels, media_seconds: info.duration, segments: input.segments.length });
    const audios = new Map<string, { file: InputFile; seconds: number }>();
    for (const id of new Set(input.segments.map((s) => s.audio_file_id))) {
      const file = await ctx.fetchInput(id);
      const sound = await probeOrFail(ctx, file.path, `the audio ${id} is not a file we can read`);
      if (!sound.streams.some((s) => s.type === "audio") || sound.duration === null) throw new JobFailure("INVALID_MEDIA", `the audio ${id} has no sound`);
      audios.set(id, { file, seconds: sound.duration });
    }
    return { video, info, frame, audios };
  });
  const duration = info.duration!;
  const audioOf = (i: number) => audios.get(input.segments[i]!.audio_file_id)!;

  let plan: PlannedSegment[];
  try {
    // Checked at enqueue from the recorded facts; again here against the bytes themselves.
    plan = planSegments(input, duration, (i) => audioOf(i).seconds);
  } catch (err) {
    if (isAppError(err)) throw new JobFailure(err.code, err.message);
    throw err;
  }

  const format = { width: even(frame.width!), height: even(frame.height!), fps: frame.fps ?? 25 };
  const lipsynced = new Map<number, string>();
  const audioPaths = new Map<number, string>();
  const model = input.mode === "lipsync" ? ctx.models.resolve("video.lipsync", input.quality) : undefined;
  await ctx.stage("segments", async () => {
    for (const [k, seg] of plan.entries()) {
      const label = input.segments[seg.index]!.label;
      ctx.log.info(`segment ${k + 1} of ${plan.length}${label ? ` (${label})` : ""}: ${seg.start}–${seg.end} s`);
      const span: [number, number] = [5 + (75 * k) / plan.length, 5 + (75 * (k + 1)) / plan.length];
      const seconds = seg.end - seg.start;
      const audioPath = join(ctx.tmpDir, `segment-${k + 1}.wav`);
      await runFfmpegArgs(
        segmentAudioArgs({ audioPath: audioOf(seg.index).file.path, audioStart: seg.audioStart, audioSeconds: seg.audioSeconds, segmentSeconds: seconds, output: audioPath }),
        { signal: ctx.signal },
      );
      audioPaths.set(seg.index, audioPath);
      if (model) {
        const clip = join(ctx.tmpDir, `segment-${k + 1}.mp4`);
        await runFfmpegArgs(segmentVideoArgs({ videoPath: video.path, start: seg.start, seconds, output: clip }), { signal: ctx.signal });
        const run = await ctx.models.predict({
          jobType: "video.lipsync",
          quality: input.quality,
          input: {},
          files: { video: await localFile(clip, "video/mp4"), audio: await localFile(audioPath, "audio/wav") },
          filename: `segment-${k + 1}-lipsync`,
          maxOutputs: 1,
          outputSeconds: seconds,
          progress: span,
        });
        const made = run.downloads[0];
        const out = made ? await probe(made.path, { signal: ctx.signal }).catch(() => undefined) : undefined;
        if (!made || !out || !videoStreamOf(out) || out.duration === null) throw new JobFailure("PROVIDER_ERROR", `${run.model.model} returned something that is not a video`);
        if (out.duration < seconds - SHORT_TOLERANCE_S) {
          throw new JobFailure("PROVIDER_ERROR", `${run.model.model} made ${out.duration.toFixed(2)} s of video for a ${seconds.toFixed(2)} s segment`);
        }
        lipsynced.set(seg.index, made.path);
      }
      ctx.progress(span[1]);
    }
  });

  const output = join(ctx.tmpDir, "lipsync.mp4");
  const made = await ctx.stage("assemble", async () => {
    const parts = partsOf(plan, duration, (seg) => ({ audioPath: audioPaths.get(seg.index)!, lipsyncedPath: lipsynced.get(seg.index) }));
    const hasAudio = info.streams.some((s) => s.type === "audio");
    const effects = effectsGraph(input, format);
    await runFfmpegArgs(assembleArgs({ videoPath: video.path, hasAudio, parts, format, output, videoGraph: effects.graph }), {
      signal: ctx.signal,
      durationSec: duration,
      onProgress: (p) => ctx.progress(80 + p * 0.15),
    });
    const result = await probe(output, { signal: ctx.signal });
    if (Math.abs((result.duration ?? 0) - duration) > LENGTH_TOLERANCE_S) throw new Error(`the joined video lasts ${result.duration} s, not the source's ${duration} s`);
    return { duration_s: Math.round(result.duration! * 1000) / 1000, ...(input.effects.length > 0 ? { effects: { erased: effects.erased, skipped: effects.skipped } } : {}) };
  });

  const suffix = input.mode === "lipsync" ? "lipsync" : "dub";
  const file = await ctx.stage("upload", () => ctx.uploadOutput(output, `${stem(video.filename, "video")}-${suffix}.mp4`, "video/mp4"));
  return {
    files: [file],
    ...made,
    mode: input.mode,
    segments: plan.map((seg) => ({
      index: seg.index,
      start_time: seg.start,
      end_time: seg.end,
      audio_seconds: Math.round(seg.audioSeconds * 1000) / 1000,
      ...(input.segments[seg.index]!.label ? { label: input.segments[seg.index]!.label } : {}),
    })),
    ...(model ? { model: model.model, provider_runs: ctx.models.runs } : {}),
  };
}

const even = (n: number) => Math.max(2, n - (n % 2));

/**
 * The input's effects as video.erase's graph (its builder, over the joined video): erasures planned
 * inside the frame, those that protections cover skipped, protected pixels put back.
 */
function effectsGraph(input: VideoLipsyncInput, frame: { width: number; height: number }) {
  const protections = input.effects.filter((e) => e.type === "protection");
  const erasures = input.effects.filter((e) => e.type === "erasure").map((e) => ({ start_time: e.start_time, end_time: e.end_time, bbox: e.bbox, source: "given" as const }));
  const { erase, skipped } = planErasures(erasures, protections, frame);
  const graph =
    erase.length > 0
      ? (from: string, to: string) => eraseFilterGraph(erase, protections, input.effects_method, frame).replaceAll("[0:v]", from).replace(/\[v\]$/, to)
      : undefined;
  return { graph, erased: erase.map(({ start_time, end_time, bbox }) => ({ start_time, end_time, bbox })), skipped: skipped.map(({ start_time, end_time, bbox, reason }: SkippedErasure) => ({ start_time, end_time, bbox, reason })) };
}

async function probeOrFail(ctx: JobContext<VideoLipsyncInput>, path: string, message: string): Promise<ProbeResult> {
  return probe(path, { signal: ctx.signal }).catch((err: Error) => {
    if (ctx.signal.aborted) throw err;
    throw new JobFailure("INVALID_MEDIA", message, { cause: err });
  });
}

/** A file the worker made, as the model layer takes files. */
async function localFile(path: string, contentType: string): Promise<InputFile> {
  return { path, filename: path.slice(path.lastIndexOf("/") + 1), contentType, size: (await stat(path)).size };
}
