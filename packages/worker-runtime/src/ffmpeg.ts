// fluent-ffmpeg is archived upstream: every ffmpeg/ffprobe call in Cutroom goes through this
// module, so it can be replaced (e.g. by a plain child_process.spawn) without touching workers.
// ffprobe already is: fluent-ffmpeg's cannot be stopped, and a probe must end within its timeout.
import { spawn } from "node:child_process";
import { inSpan, tracing } from "@cutroom/runtime";
import ffmpeg from "fluent-ffmpeg";
import type { FfmpegCommand } from "fluent-ffmpeg";

export type { FfmpegCommand };

export interface RunOptions {
  /** Aborting kills ffmpeg with SIGKILL and rejects with an AbortError. */
  signal?: AbortSignal;
  /** Percent done, 0–100, never decreasing; 100 once ffmpeg exits cleanly. */
  onProgress?: (percent: number) => void;
  /** Length of the output in seconds: ffmpeg reports how far it got as a time, not a percent. */
  durationSec?: number;
}

export class FfmpegError extends Error {
  override name = "FfmpegError";
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

const abortError = () => new DOMException("ffmpeg was aborted", "AbortError");
export const isAbortError = (err: unknown) => err instanceof Error && err.name === "AbortError";

const progressLine = /^\s*(frame|size)=/;
const LOG_LINES_KEPT = 400;

/**
 * Reads ffmpeg's stderr a line at a time: progress lines become a percentage of durationSec
 * (rising only, one decimal), the rest are kept as the log (its last LOG_LINES_KEPT lines).
 */
function stderrLog({ onProgress, durationSec }: RunOptions) {
  const log: string[] = [];
  let reported = 0;
  const report = (percent: number) => {
    const p = Math.round(Math.min(100, Math.max(0, percent)) * 10) / 10;
    if (p <= reported) return;
    reported = p;
    onProgress?.(p);
  };
  const onLine = (line: string) => {
    if (!progressLine.test(line)) {
      log.push(line);
      if (log.length > LOG_LINES_KEPT) log.shift();
      return;
    }
    const t = /time=(-?\d+):(\d+):(\d+(?:\.\d+)?)/.exec(line);
    if (t && durationSec && durationSec > 0) {
      const seconds = Number(t[1]) * 3600 + Number(t[2]) * 60 + Number(t[3]);
      report((seconds / durationSec) * 100);
    }
  };
  return { log, report, onLine };
}

/** Runs one ffmpeg command built on a fresh FfmpegCommand; resolves with its log (stderr). */
export function runFfmpeg(build: (cmd: FfmpegCommand) => unknown, opts: RunOptions = {}): Promise<{ stderr: string }> {
  // One span per run when tracing is on (ADR 036): every ffmpeg of a job goes through here or runFfmpegArgs.
  return tracing.on ? inSpan("ffmpeg", { attributes: { "process.executable.name": "ffmpeg" } }, () => startFfmpeg(build, opts)) : startFfmpeg(build, opts);
}

function startFfmpeg(build: (cmd: FfmpegCommand) => unknown, opts: RunOptions): Promise<{ stderr: string }> {
  const { signal } = opts;
  if (signal?.aborted) return Promise.reject(abortError());

  const cmd = ffmpeg();
  build(cmd);
  const { log, report, onLine } = stderrLog(opts);

  return new Promise((resolve, reject) => {
    const kill = () => cmd.kill("SIGKILL");
    const cleanup = () => signal?.removeEventListener("abort", kill);
    signal?.addEventListener("abort", kill, { once: true });

    cmd.on("start", () => {
      if (signal?.aborted) kill();
    });
    cmd.on("stderr", onLine);
    cmd.on("end", () => {
      cleanup();
      report(100);
      resolve({ stderr: log.join("\n") });
    });
    cmd.on("error", (err: Error) => {
      cleanup();
      if (signal?.aborted) return reject(abortError());
      const tail = log.slice(-12).join("\n");
      reject(new FfmpegError(`${err.message.split("\n")[0]}\n${tail}`, log.join("\n")));
    });
    cmd.run();
  });
}

export interface MediaStream {
  type: "video" | "audio" | "subtitle" | "data" | "attachment" | "unknown";
  codec: string | null;
  width: number | null;
  height: number | null;
  fps: number | null;
  sample_rate: number | null;
  channels: number | null;
  /** A still picture such as an mp3's cover art, not moving video. */
  attached_pic: boolean;
  /** The decoder's pixel format (yuv420p, yuva444p12le…), for video. */
  pix_fmt: string | null;
  /** The pictures carry an alpha channel: a pixel format with one, or VP9 in WebM flagged alpha_mode (its decoder shows yuv420p). */
  alpha: boolean;
}

export interface ProbeResult {
  /** Seconds, or null when the container does not say. */
  duration: number | null;
  format: string;
  streams: MediaStream[];
}

const num = (v: unknown): number | null => {
  const n = Number(v);
  return v === undefined || v === null || v === "N/A" || !Number.isFinite(n) ? null : n;
};
const alphaFormat = /^(yuva|gbrap|ya\d|rgba|bgra|argb|abgr|rgba64|bgra64)/;
const rate = (r: string | undefined): number | null => {
  const [a, b] = (r ?? "").split("/").map(Number);
  // A rate that rounds to 0 (one frame in hours) is no rate anyone can use: unknown, not 0, which MediaFacts refuses.
  return a && b ? Math.round((a / b) * 1000) / 1000 || null : null;
};

export interface ProbeOptions {
  /** ffprobe is killed past this many ms (default 60 s): a slow or hostile source must not hold the caller. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

// Formats ffprobe reads as media that are really a still image or a text file: they have no duration.
const stillFormats = /^(image2|tty|.*_pipe)$/;

/**
 * What ffprobe says about a file (a path or a URL); rejects with an FfmpegError when it is not media
 * at all. A container that does not state its duration (a browser's WebM recording) is timed by
 * reading its packets, so a duration is null only for stills and files without audio or video.
 */
export async function probe(source: string, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  // The bytes are a user's: whatever they name (a playlist's segments, a reference), ffprobe reads nothing but the source's own kind.
  const input = ["-protocol_whitelist", /^https?:\/\//.test(source) ? "http,https,tcp,tls" : "file", source];
  const data = JSON.parse(await runFfprobe(["-print_format", "json", "-show_streams", "-show_format", ...input], deadline, opts.signal)) as FfprobeJson;
  if (!data.format) throw new FfmpegError("ffprobe failed: no format in its answer", "");
  const streams = (data.streams ?? []).map(
    (s): MediaStream => ({
      type: (["video", "audio", "subtitle", "data", "attachment"].includes(s.codec_type ?? "") ? s.codec_type : "unknown") as MediaStream["type"],
      codec: s.codec_name ?? null,
      width: num(s.width) || null,
      height: num(s.height) || null,
      fps: s.codec_type === "video" ? (rate(s.avg_frame_rate) ?? rate(s.r_frame_rate)) : null,
      sample_rate: num(s.sample_rate),
      channels: num(s.channels),
      attached_pic: s.disposition?.attached_pic === 1,
      pix_fmt: s.pix_fmt ?? null,
      alpha: alphaFormat.test(s.pix_fmt ?? "") || s.tags?.alpha_mode === "1" || s.tags?.ALPHA_MODE === "1",
    }),
  );
  const format = String(data.format.format_name ?? "unknown");
  let duration = num(data.format.duration) ?? num(data.streams?.find((s) => num(s.duration) !== null)?.duration);
  const timed = streams.findIndex((s) => s.type === "audio" || (s.type === "video" && !s.attached_pic));
  if (duration === null && timed >= 0 && !stillFormats.test(format)) {
    duration = await packetDuration(input, data.streams![timed]!.index, deadline, opts.signal);
  }
  return { duration, format, streams };
}

/** The part of ffprobe's JSON we read. */
interface FfprobeJson {
  streams?: Array<{
    index: number;
    codec_type?: string;
    codec_name?: string;
    width?: number;
    height?: number;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    sample_rate?: string;
    channels?: number;
    duration?: string;
    disposition?: { attached_pic?: number };
    pix_fmt?: string;
    tags?: Record<string, string>;
  }>;
  format?: { format_name?: string; duration?: string };
}

/** The end of a stream's last packet, in seconds: the length of a container that does not say. */
async function packetDuration(input: string[], streamIndex: number, deadline: number, signal?: AbortSignal): Promise<number | null> {
  const out = await runFfprobe(["-select_streams", String(streamIndex), "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", ...input], deadline, signal);
  let end: number | null = null;
  for (const line of out.split("\n")) {
    if (!line.trim()) continue;
    const [pts, dur] = line.split(",").map(num);
    if (pts !== null && pts !== undefined) end = Math.max(end ?? 0, pts + (dur ?? 0));
  }
  return end;
}

function runFfprobe(args: string[], deadline: number, signal?: AbortSignal): Promise<string> {
  return tracing.on ? inSpan("ffprobe", { attributes: { "process.executable.name": "ffprobe" } }, () => startFfprobe(args, deadline, signal)) : startFfprobe(args, deadline, signal);
}

function startFfprobe(args: string[], deadline: number, signal?: AbortSignal): Promise<string> {
  if (signal?.aborted) return Promise.reject(abortError());
  return new Promise((resolve, reject) => {
    const child = spawn("ffprobe", ["-v", "error", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    let stderr = "";
    let ended: Error | undefined;
    const stop = (err: Error) => {
      ended ??= err;
      child.kill("SIGKILL");
    };
    const onAbort = () => stop(abortError());
    const timer = setTimeout(() => stop(new FfmpegError("ffprobe failed: it took longer than its time limit", stderr)), Math.max(0, deadline - Date.now()));
    signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 8192) stderr += chunk.toString();
    });
    child.once("error", (err) => stop(new FfmpegError(`ffprobe failed: ${err.message}`, stderr)));
    child.once("close", (code) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (ended) return reject(ended);
      if (code !== 0) return reject(new FfmpegError(`ffprobe failed: ${stderr.split("\n")[0] || `exit ${code}`}`, stderr));
      resolve(Buffer.concat(stdout).toString());
    });
  });
}

const dbValue = (log: string, label: string): number => {
  const m = new RegExp(`${label}: (-?inf|-?[\\d.]+)`).exec(log);
  if (!m) return Number.NaN;
  return m[1] === "-inf" ? -Infinity : m[1] === "inf" ? Infinity : Number(m[1]);
};

export interface AudioStats {
  /** Overall RMS level, dBFS. */
  rmsDb: number;
  peakDb: number;
  /** astats' noise floor: the quietest 50 ms window's peak, dBFS (-Infinity for digital silence). */
  noiseFloorDb: number;
  /** The quietest 50 ms window's RMS, dBFS: the level of the background between sounds. */
  rmsTroughDb: number;
  /** EBU R128 integrated loudness, LUFS (-70 when the window is too short or silent). */
  loudnessLufs: number;
}

/** Level statistics of the first audio stream, optionally of a window of it. */
export async function measureAudio(
  path: string,
  window: { startSec?: number; durationSec?: number } = {},
  signal?: AbortSignal,
): Promise<AudioStats> {
  const { stderr } = await runFfmpeg(
    (cmd) => {
      const inputOptions = [];
      if (window.startSec !== undefined) inputOptions.push("-ss", String(window.startSec));
      if (window.durationSec !== undefined) inputOptions.push("-t", String(window.durationSec));
      cmd
        .input(path)
        .inputOptions(inputOptions)
        .outputOptions(["-map", "0:a:0"])
        .audioFilters([
          "astats=measure_perchannel=none:measure_overall=RMS_level+RMS_trough+Peak_level+Noise_floor",
          "ebur128=framelog=verbose",
        ])
        .format("null")
        .output("-");
    },
    { signal },
  );
  const loudness = /Integrated loudness:\s*\n?.*?I:\s*(-?[\d.]+) LUFS/s.exec(stderr);
  return {
    rmsDb: dbValue(stderr, "RMS level dB"),
    peakDb: dbValue(stderr, "Peak level dB"),
    noiseFloorDb: dbValue(stderr, "Noise floor dB"),
    rmsTroughDb: dbValue(stderr, "RMS trough dB"),
    loudnessLufs: loudness ? Number(loudness[1]) : Number.NaN,
  };
}

export interface FrameStats {
  /** Mean luma, 0–255. */
  yavg: number;
  /** Mean Cb and Cr, 128 = neutral; warmer pictures have a higher Cr and a lower Cb. */
  uavg: number;
  vavg: number;
  /** Mean saturation (chroma distance from neutral). */
  satavg: number;
}

/** signalstats of the single frame shown at `atSec`, in 8-bit units. */
export async function measureFrame(path: string, atSec = 0, signal?: AbortSignal): Promise<FrameStats> {
  const { stderr } = await runFfmpeg(
    (cmd) =>
      cmd
        .input(path)
        .inputOptions(["-ss", String(atSec)])
        .outputOptions(["-map", "0:v:0", "-frames:v", "1"])
        .videoFilters(["format=yuv444p", "signalstats", "metadata=mode=print"])
        .format("null")
        .output("-"),
    { signal },
  );
  const stat = (key: string) => Number(new RegExp(`lavfi\\.signalstats\\.${key}=(-?[\\d.]+)`).exec(stderr)?.[1] ?? Number.NaN);
  return { yavg: stat("YAVG"), uavg: stat("UAVG"), vavg: stat("VAVG"), satavg: stat("SATAVG") };
}

/**
 * Runs ffmpeg with a ready argument list (no "ffmpeg" in front): for commands a worker also hands
 * to the benchmark, so the very same command can be run by hand. Resolves with its log (stderr).
 */
export function runFfmpegArgs(args: readonly string[], opts: RunOptions = {}): Promise<{ stderr: string }> {
  return tracing.on ? inSpan("ffmpeg", { attributes: { "process.executable.name": "ffmpeg" } }, () => startFfmpegArgs(args, opts)) : startFfmpegArgs(args, opts);
}

function startFfmpegArgs(args: readonly string[], opts: RunOptions): Promise<{ stderr: string }> {
  const { signal } = opts;
  if (signal?.aborted) return Promise.reject(abortError());
  const { log, report, onLine } = stderrLog(opts);
  let pending = "";
  return new Promise((resolve, reject) => {
    const child = spawn("ffmpeg", ["-hide_banner", "-nostdin", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    const kill = () => child.kill("SIGKILL");
    signal?.addEventListener("abort", kill, { once: true });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      const lines = (pending + chunk).split(/\r\n|\r|\n/);
      pending = lines.pop() ?? "";
      lines.forEach(onLine);
    });
    let failed: Error | undefined;
    child.once("error", (err) => (failed = err));
    child.once("close", (code) => {
      signal?.removeEventListener("abort", kill);
      if (pending) onLine(pending);
      if (signal?.aborted) return reject(abortError());
      if (failed || code !== 0) {
        const tail = log.slice(-12).join("\n");
        return reject(new FfmpegError(`ffmpeg failed: ${failed?.message ?? `exit ${code}`}\n${tail}`, log.join("\n")));
      }
      report(100);
      resolve({ stderr: log.join("\n") });
    });
  });
}

export interface LoudnormMeasurement {
  input_i: number;
  input_tp: number;
  input_lra: number;
  input_thresh: number;
  target_offset: number;
}

/** loudnorm's print_format=json block, the last JSON object with input_i in ffmpeg's log. */
export function parseLoudnorm(stderr: string): LoudnormMeasurement {
  const json = /\{[^{}]*"input_i"[^{}]*\}/.exec(stderr)?.[0];
  if (!json) throw new Error("loudnorm printed no measurement");
  const raw = JSON.parse(json) as Record<string, string>;
  const n = (k: string) => (raw[k] === "-inf" ? -Infinity : Number(raw[k]));
  return { input_i: n("input_i"), input_tp: n("input_tp"), input_lra: n("input_lra"), input_thresh: n("input_thresh"), target_offset: n("target_offset") };
}

/**
 * loudnorm's second pass: one linear gain to `targetLufs` from the first pass's measurement, so
 * quiet gaps are not pumped up; nothing when the first pass heard only silence.
 */
export function loudnormFilter(targetLufs: number, measured: LoudnormMeasurement | undefined): string | undefined {
  if (!measured || !Number.isFinite(measured.input_i) || measured.input_i <= -70) return undefined;
  return (
    `loudnorm=I=${targetLufs}:TP=-1.5:LRA=11:measured_I=${measured.input_i}:measured_TP=${measured.input_tp}:measured_LRA=${measured.input_lra}` +
    `:measured_thresh=${measured.input_thresh}:offset=${measured.target_offset}:linear=true`
  );
}
