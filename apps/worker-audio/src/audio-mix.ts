import { basename, extname, join } from "node:path";
import type { AudioMixInput, JobLimits, MediaFacts } from "@cutroom/contracts";
import { JobFailure, checkLimits, outputFacts, type InputFile, type JobContext, type JobOutput } from "@cutroom/worker-runtime";
import { loudnormFilter, measureAudio, parseLoudnorm, probe, runFfmpegArgs, type LoudnormMeasurement } from "@cutroom/worker-runtime/ffmpeg";

const SAMPLE_RATE = 48_000;

/** One track as placed: its file, where it starts and how long it is. */
export interface MixTrack {
  path: string;
  start: number;
  volume: number;
  seconds: number;
}

export interface MixPlan {
  options: AudioMixInput;
  tracks: MixTrack[];
  /** The latest end on the timeline. */
  durationSec: number;
}

const n = (v: number) => String(Math.round(v * 1e6) / 1e6);

const encoders: Record<AudioMixInput["format"], string[]> = {
  wav: ["-c:a", "pcm_s16le", "-f", "wav"],
  mp3: ["-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"],
  m4a: ["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", "-f", "ipod"],
};

/** Each track in stereo at 48 kHz, at its volume, delayed to its start; summed as they are (normalize=0), loudnorm last. */
export function mixGraph(plan: MixPlan, loudness: string | undefined): string {
  const placed = plan.tracks.map((t, i) => {
    const ms = Math.round(t.start * 1000);
    return `[${i}:a]aformat=sample_fmts=fltp:sample_rates=${SAMPLE_RATE}:channel_layouts=stereo,volume=${n(t.volume)}${ms > 0 ? `,adelay=${ms}:all=1` : ""}[t${i}]`;
  });
  const labels = plan.tracks.map((_t, i) => `[t${i}]`).join("");
  const tail = [...(loudness ? [loudness] : []), `aresample=${SAMPLE_RATE}`, "aformat=channel_layouts=stereo"].join(",");
  return [...placed, `${labels}amix=inputs=${plan.tracks.length}:duration=longest:normalize=0,${tail}[mix]`].join(";");
}

const inputArgs = (plan: MixPlan) => plan.tracks.flatMap((t) => ["-i", t.path]);

/** The loudness-measuring pass: the mix into loudnorm's print_format=json. */
export function mixMeasureArgs(plan: MixPlan): string[] {
  const measure = `loudnorm=I=${plan.options.loudness}:TP=-1.5:LRA=11:print_format=json`;
  return ["-y", ...inputArgs(plan), "-filter_complex", mixGraph(plan, measure), "-map", "[mix]", "-f", "null", "-"];
}

/**
 * The ffmpeg arguments (without "ffmpeg") of the mix the handler renders: `measured` is the
 * measuring pass's loudnorm reading (parseLoudnorm of mixMeasureArgs' log). The benchmark runs
 * these very arguments by hand.
 */
export function mixFfmpegArgs(plan: MixPlan, outputPath: string, measured?: LoudnormMeasurement): string[] {
  const graph = mixGraph(plan, loudnormFilter(plan.options.loudness, measured));
  return ["-y", ...inputArgs(plan), "-filter_complex", graph, "-map", "[mix]", ...encoders[plan.options.format], outputPath];
}

/**
 * Measures the tracks and places them: what the handler and the benchmark both start from. A track's
 * length is what storage measured of its file (`media`) when that says it has sound (ADR 058); else ffprobe's.
 */
export async function planMix(run: { options: AudioMixInput; inputs: readonly MixInput[]; limits: JobLimits; signal?: AbortSignal }): Promise<MixPlan> {
  const tracks = await Promise.all(
    run.inputs.map(async ({ path, media }, i): Promise<MixTrack> => {
      const track = run.options.tracks[i]!;
      return { path, start: track.start, volume: track.volume, seconds: await trackSeconds(path, i, media, run.signal) };
    }),
  );
  const durationSec = Math.max(...tracks.map((t) => t.start + t.seconds));
  checkLimits(run.limits, { media_seconds: tracks.reduce((sum, t) => sum + t.seconds, 0), output_seconds: durationSec });
  return { options: run.options, tracks, durationSec };
}

async function trackSeconds(path: string, i: number, media: MediaFacts | undefined, signal?: AbortSignal): Promise<number> {
  if (media?.has_audio === true && media.duration_seconds != null) return media.duration_seconds;
  const info = await probe(path, signal ? { signal } : {}).catch((err: Error) => {
    throw new JobFailure("INVALID_MEDIA", `tracks[${i}] is not a readable audio file`, { cause: err });
  });
  if (!info.streams.some((s) => s.type === "audio")) throw new JobFailure("INVALID_MEDIA", `tracks[${i}] has no audio stream`);
  if (info.duration === null) throw new JobFailure("INVALID_MEDIA", `tracks[${i}]: the audio's length cannot be measured`);
  return info.duration;
}

/** A track's local file, with what storage measured of it (ADR 058). */
export type MixInput = Pick<InputFile, "path" | "media">;

export interface MixRun {
  options: AudioMixInput;
  /** The tracks' files, in the order of the input's tracks. */
  inputs: readonly MixInput[];
  outputPath: string;
  limits: JobLimits;
  signal?: AbortSignal;
  onProgress?: (percent: number) => void;
}

/** What mixAudio measures of its output itself; its length comes from storage's measurement (ADR 056). */
export interface MixResult {
  /** Integrated loudness of the output, LUFS. */
  loudness_lufs: number | null;
}

/** Mixes the tracks into `outputPath`: measure the mix's loudness, then render it with one linear gain to the target. */
export async function mixAudio(run: MixRun): Promise<MixResult> {
  const { signal, onProgress = () => {} } = run;
  const plan = await planMix(run);
  const { stderr } = await runFfmpegArgs(mixMeasureArgs(plan), { signal, durationSec: plan.durationSec, onProgress: (p) => onProgress(p * 0.4) });
  await runFfmpegArgs(mixFfmpegArgs(plan, run.outputPath, parseLoudnorm(stderr)), { signal, durationSec: plan.durationSec, onProgress: (p) => onProgress(40 + p * 0.6) });
  const after = await measureAudio(run.outputPath, {}, signal);
  return { loudness_lufs: Number.isFinite(after.loudnessLufs) ? Math.round(after.loudnessLufs * 10) / 10 : null };
}

const contentTypes = { wav: "audio/wav", mp3: "audio/mpeg", m4a: "audio/mp4" } as const;

/** The audio.mix handler: fetch the tracks, mix, upload. */
export async function mixHandler(ctx: JobContext<AudioMixInput>): Promise<JobOutput> {
  const { tracks, format } = ctx.input;
  const ids = [...new Set(tracks.map((t) => t.file_id))];
  const files = await ctx.stage("fetch", async () => new Map(await Promise.all(ids.map(async (id) => [id, await ctx.fetchInput(id)] as const))));

  const outputPath = join(ctx.tmpDir, `mix.${format}`);
  const mixed = await ctx.stage("mix", () =>
    mixAudio({
      options: ctx.input,
      inputs: tracks.map((t) => files.get(t.file_id)!),
      outputPath,
      limits: ctx.limits,
      signal: ctx.signal,
      onProgress: (p) => ctx.progress(5 + p * 0.9),
    }),
  );
  const first = files.get(tracks[0]!.file_id)!.filename;
  const file = await ctx.stage("upload", () => ctx.uploadOutput(outputPath, `${basename(first, extname(first)) || "audio"}-mix.${format}`, contentTypes[format]));
  return { files: [file], duration: outputFacts(file).duration, ...mixed };
}
