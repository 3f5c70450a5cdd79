import { audioCleanupPresets, type JobInput, type JobLimits } from "@cutroom/contracts";
import { JobFailure, checkLimits } from "@cutroom/worker-runtime";
import { loudnormFilter, measureAudio, parseLoudnorm, probe, runFfmpeg, type FfmpegCommand } from "@cutroom/worker-runtime/ffmpeg";

export type CleanupOptions = Omit<JobInput<"audio.cleanup">, "file_id">;

/** EBU R128 targets: -16 LUFS is the usual level for spoken word on streaming platforms. */
export const loudnessTarget = { I: -16, TP: -1.5, LRA: 11 } as const;
const SAMPLE_RATE = 48_000;

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/**
 * The cleanup chain before loudness normalisation. Aggression scales the preset: 50 is the
 * preset as designed, 0 turns denoising off, 100 doubles it. afftdn needs the noise floor
 * to be near the truth to work at all, so it gets the input's measured one.
 */
export function cleanupFilters(options: Pick<CleanupOptions, "preset" | "aggression">, noiseFloorDb: number, sampleRate: number): string[] {
  const preset = audioCleanupPresets[options.preset];
  const strength = options.aggression / 50;
  const nr = clamp(preset.noiseReduction * strength, 0.01, 97);
  const nf = Number.isNaN(noiseFloorDb) ? -50 : clamp(Math.round(noiseFloorDb), -80, -20);
  const filters = [`highpass=f=${preset.highpass}`];
  // A low-pass at or above Nyquist is not a filter but an unstable biquad.
  if (preset.lowpass < sampleRate * 0.45) filters.push(`lowpass=f=${preset.lowpass}`);
  filters.push(`afftdn=nr=${nr.toFixed(2)}:nf=${nf}`);
  if (preset.dialogue) {
    // Presence boost where consonants live, then gentle compression to even out the voice.
    filters.push(`equalizer=f=3000:t=q:w=1:g=${(3 * strength).toFixed(1)}`, "acompressor=threshold=-24dB:ratio=3:attack=10:release=200:makeup=2");
  }
  return filters;
}

const encoders: Record<CleanupOptions["format"], (cmd: FfmpegCommand) => unknown> = {
  wav: (cmd) => cmd.audioCodec("pcm_s16le").format("wav"),
  mp3: (cmd) => cmd.audioCodec("libmp3lame").audioBitrate("192k").format("mp3"),
  m4a: (cmd) => cmd.audioCodec("aac").audioBitrate("192k").outputOptions(["-movflags", "+faststart"]).format("ipod"),
};

export interface CleanupRun {
  inputPath: string;
  outputPath: string;
  options: CleanupOptions;
  /** The job's bounds: the input's length is checked before ffmpeg starts. */
  limits: JobLimits;
  signal?: AbortSignal;
  onProgress?: (percent: number) => void;
}

/** What cleanupAudio measures itself; the output's length comes from storage's measurement (ADR 056). */
export interface CleanupResult {
  /** Integrated loudness of the output, LUFS. */
  loudness_lufs: number | null;
  /** RMS of the quietest 50 ms, dBFS, after and before (the output is also louder or quieter overall). */
  noise_floor_db: number | null;
  input_noise_floor_db: number | null;
  input_loudness_lufs: number | null;
}

const rounded = (v: number) => (Number.isFinite(v) ? Math.round(v * 10) / 10 : null);

/**
 * Denoises and normalises the first audio stream into `outputPath`. Loudness normalisation is
 * loudnorm's two-pass linear mode: pass one measures the cleaned audio, pass two applies one
 * gain, so quiet gaps are not pumped up the way single-pass (dynamic) loudnorm would.
 */
export async function cleanupAudio(run: CleanupRun): Promise<CleanupResult> {
  const { signal, onProgress = () => {} } = run;
  const info = await probe(run.inputPath).catch((err: Error) => {
    throw new JobFailure("INVALID_MEDIA", "the input is not a readable audio file", { cause: err });
  });
  const audio = info.streams.find((s) => s.type === "audio");
  if (!audio) throw new JobFailure("INVALID_MEDIA", "the input has no audio stream");
  if (info.duration === null) throw new JobFailure("INVALID_MEDIA", "the audio's length cannot be measured");
  checkLimits(run.limits, { media_seconds: info.duration });

  const before = await measureAudio(run.inputPath, {}, signal);
  const chain = cleanupFilters(run.options, before.noiseFloorDb, audio.sample_rate ?? SAMPLE_RATE);
  const durationSec = info.duration ?? undefined;
  const target = `I=${loudnessTarget.I}:TP=${loudnessTarget.TP}:LRA=${loudnessTarget.LRA}`;

  const { stderr } = await runFfmpeg(
    (cmd) => cmd.input(run.inputPath).outputOptions(["-map", "0:a:0"]).audioFilters([...chain, `loudnorm=${target}:print_format=json`]).format("null").output("-"),
    { signal, durationSec, onProgress: (p) => onProgress(p * 0.4) },
  );
  // Silence has no loudness to normalise: loudnormFilter gives nothing, and it is left at its level.
  const loudnorm = loudnormFilter(loudnessTarget.I, parseLoudnorm(stderr));

  await runFfmpeg(
    (cmd) => {
      cmd
        .input(run.inputPath)
        .outputOptions(["-map", "0:a:0"])
        .audioFilters([...chain, ...(loudnorm ? [loudnorm] : []), `aresample=${SAMPLE_RATE}`]);
      encoders[run.options.format](cmd);
      cmd.output(run.outputPath);
    },
    { signal, durationSec, onProgress: (p) => onProgress(40 + p * 0.6) },
  );

  const after = await measureAudio(run.outputPath, {}, signal);
  return {
    loudness_lufs: rounded(after.loudnessLufs),
    noise_floor_db: rounded(after.rmsTroughDb),
    input_noise_floor_db: rounded(before.rmsTroughDb),
    input_loudness_lufs: rounded(before.loudnessLufs),
  };
}
