import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { composeClipSeconds, composeFrame, composedSeconds, type JobLimits, type VideoComposeInput } from "@cutroom/contracts";
import { JobFailure, checkLimits, outputFacts, type JobContext, type JobOutput } from "@cutroom/worker-runtime";
import { loudnormFilter, measureAudio, parseLoudnorm, probe, runFfmpegArgs, type LoudnormMeasurement, type ProbeResult } from "@cutroom/worker-runtime/ffmpeg";
import { stem, videoStreamOf } from "./media.ts";

export type ComposeOptions = VideoComposeInput;

/** DejaVu Sans from Debian's fonts-dejavu-core: every drawtext uses it, so text looks the same on every machine. */
export const composeFont = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SAMPLE_RATE = 48_000;
const audioFormat = `aformat=sample_fmts=fltp:sample_rates=${SAMPLE_RATE}:channel_layouts=stereo`;

/** What the graph needs to know of each input file: its path and what ffprobe found in it. */
export interface ComposeSource {
  path: string;
  info: ProbeResult;
}

/** One clip as placed: its file, whether it is a still, and the seconds it lasts. */
export interface PlannedClip {
  path: string;
  still: boolean;
  hasAudio: boolean;
  start: number;
  seconds: number;
  zoom: boolean;
}

/** Everything the ffmpeg command is built from: pure data, so the graph can be unit-tested and re-run by hand. */
export interface ComposePlan {
  options: ComposeOptions;
  clips: PlannedClip[];
  imageOverlays: string[];
  audio: string[];
  /** Text files the drawtext filters read (written beside the output), one per text overlay. */
  textFiles: string[];
  frame: { width: number; height: number };
  durationSec: number;
}

const n = (v: number) => String(Math.round(v * 1e6) / 1e6);

/** Sizes each clip, checks the limits and writes the overlay texts to files: the plan the ffmpeg commands are built from. */
export async function planCompose(run: {
  options: ComposeOptions;
  clips: ComposeSource[];
  imageOverlays: ComposeSource[];
  audio: ComposeSource[];
  /** Where the overlay texts are written (drawtext reads them from files: no escaping of user text in the graph). */
  workDir: string;
  limits: JobLimits;
}): Promise<ComposePlan> {
  const { options } = run;
  const clips = run.clips.map((source, i): PlannedClip => {
    const clip = options.clips[i]!;
    const video = videoStreamOf(source.info);
    const picture = source.info.streams.find((s) => s.type === "video");
    if (!picture) throw new JobFailure("INVALID_MEDIA", `clips[${i}] is neither a video nor an image`);
    const still = !video;
    if (!still && source.info.duration === null) throw new JobFailure("INVALID_MEDIA", `clips[${i}]: the video's length cannot be measured`);
    const seconds = composeClipSeconds(clip, still ? null : source.info.duration);
    if (seconds === undefined) throw new JobFailure("INVALID_INPUT", `clips[${i}] starts at ${clip.trim_start} s, past the end of its video (${source.info.duration} s)`);
    if (options.transition === "crossfade" && options.clips.length > 1 && seconds <= options.transition_duration) {
      throw new JobFailure("INVALID_INPUT", `clips[${i}] lasts ${seconds} s, not longer than the ${options.transition_duration} s crossfade`);
    }
    return { path: source.path, still, hasAudio: !still && source.info.streams.some((s) => s.type === "audio"), start: still ? 0 : (clip.trim_start ?? 0), seconds, zoom: still && clip.zoom };
  });
  run.audio.forEach((source, i) => {
    if (!source.info.streams.some((s) => s.type === "audio")) throw new JobFailure("INVALID_MEDIA", `audio[${i}] has no audio stream`);
  });
  run.imageOverlays.forEach((source, i) => {
    if (!source.info.streams.some((s) => s.type === "video")) throw new JobFailure("INVALID_MEDIA", `image_overlays[${i}] is not an image`);
  });

  const first = run.clips[0]!.info.streams.find((s) => s.type === "video")!;
  const frame = composeFrame(options, { width: first.width ?? 640, height: first.height ?? 360 });
  const durationSec = composedSeconds(options, clips.map((c) => c.seconds));
  const pictures = [...run.clips, ...run.imageOverlays].flatMap((s) => s.info.streams.filter((v) => v.type === "video").map((v) => (v.width ?? 0) * (v.height ?? 0)));
  checkLimits(run.limits, {
    input_pixels: Math.max(0, ...pictures),
    output_pixels: frame.width * frame.height,
    media_seconds: [...run.clips, ...run.audio].reduce((sum, s) => sum + (s.info.duration ?? 0), 0),
    output_seconds: durationSec,
  });

  const textFiles = await Promise.all(
    options.text_overlays.map(async (t, i) => {
      const path = join(run.workDir, `text-${i}.txt`);
      await writeFile(path, t.text);
      return path;
    }),
  );
  return { options, clips, imageOverlays: run.imageOverlays.map((s) => s.path), audio: run.audio.map((s) => s.path), textFiles, frame, durationSec };
}

/** ffmpeg's input arguments: the clips (trimmed at the demuxer, stills looped), then the overlay images, then the audio files. */
function inputArgs(plan: ComposePlan): string[] {
  const args: string[] = [];
  for (const clip of plan.clips) {
    if (clip.still && clip.zoom) args.push("-i", clip.path);
    else if (clip.still) args.push("-loop", "1", "-framerate", n(plan.options.fps), "-t", n(clip.seconds), "-i", clip.path);
    else args.push("-ss", n(clip.start), "-t", n(clip.seconds), "-i", clip.path);
  }
  for (const path of plan.imageOverlays) args.push("-i", path);
  for (const path of plan.audio) args.push("-i", path);
  return args;
}

/** The quoted path of a file inside a filter argument; our own paths never hold a quote or a backslash. */
function filterPath(path: string): string {
  if (/['\\:]/.test(path.replace(/^[A-Za-z]:/, ""))) throw new Error(`cannot quote ${path} for an ffmpeg filter`);
  return `'${path}'`;
}

/** The clips' video: each scaled into the frame and padded (never cropped), at the output fps, then cut together or crossfaded. */
export function clipVideoGraph(plan: Pick<ComposePlan, "clips" | "frame" | "options">): { filters: string[]; out: string } {
  const { width: W, height: H } = plan.frame;
  const fps = n(plan.options.fps);
  const fit = `scale=${W}:${H}:force_original_aspect_ratio=decrease,pad=${W}:${H}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1`;
  const filters = plan.clips.map((clip, i) => {
    const chain = [fit];
    if (clip.zoom) {
      // One picture in, every frame out: a slow push in to 1.15x over the clip, centred.
      const frames = Math.max(1, Math.round(clip.seconds * plan.options.fps));
      chain.push(`zoompan=z='1+0.15*on/${frames}':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=${frames}:s=${W}x${H}:fps=${fps}`);
    }
    // A video shorter than asked keeps its last frame, so every clip lasts exactly its seconds.
    chain.push(`fps=${fps}`, "format=yuv420p", `tpad=stop_mode=clone:stop_duration=${n(clip.seconds)}`, `trim=duration=${n(clip.seconds)}`, "setpts=PTS-STARTPTS");
    return `[${i}:v]${chain.join(",")}[v${i}]`;
  });
  return join2(plan, filters, "v", (a, b, offset, d, out) => `[${a}][${b}]xfade=transition=fade:duration=${n(d)}:offset=${n(offset)}[${out}]`, (labels) => `${labels}concat=n=${plan.clips.length}:v=1:a=0`);
}

/** The clips' own sound, silence for a clip without any, each exactly as long as its clip; joined like the video. */
export function clipAudioGraph(plan: Pick<ComposePlan, "clips" | "options">): { filters: string[]; out: string } {
  const filters = plan.clips.map((clip, i) => {
    const source = clip.hasAudio ? `[${i}:a]${audioFormat},apad` : `anullsrc=channel_layout=stereo:sample_rate=${SAMPLE_RATE}`;
    return `${source},atrim=duration=${n(clip.seconds)},asetpts=PTS-STARTPTS[a${i}]`;
  });
  return join2(plan, filters, "a", (a, b, _offset, d, out) => `[${a}][${b}]acrossfade=d=${n(d)}[${out}]`, (labels) => `${labels}concat=n=${plan.clips.length}:v=0:a=1`);
}

/** Joins the per-clip streams `<kind>0…`: one concat for cuts, a chain of two-input fades for crossfades. */
function join2(
  plan: Pick<ComposePlan, "clips" | "options">,
  filters: string[],
  kind: "v" | "a",
  fade: (a: string, b: string, offset: number, d: number, out: string) => string,
  concat: (labels: string) => string,
): { filters: string[]; out: string } {
  const count = plan.clips.length;
  if (count === 1) return { filters, out: `${kind}0` };
  if (plan.options.transition === "cut") {
    const labels = plan.clips.map((_c, i) => `[${kind}${i}]`).join("");
    return { filters: [...filters, `${concat(labels)}[${kind}j]`], out: `${kind}j` };
  }
  const d = plan.options.transition_duration;
  let current = `${kind}0`;
  let length = plan.clips[0]!.seconds;
  for (let i = 1; i < count; i++) {
    const out = `${kind}x${i}`;
    filters.push(fade(current, `${kind}${i}`, length - d, d, out));
    length += plan.clips[i]!.seconds - d;
    current = out;
  }
  return { filters, out: current };
}

/** Image overlays (scaled to their width) and text, each shown only between its start and its end. */
export function overlayGraph(plan: Pick<ComposePlan, "options" | "clips" | "textFiles" | "frame">, video: string): { filters: string[]; out: string } {
  const filters: string[] = [];
  let current = video;
  const window = (start: number, duration: number) => `enable='between(t,${n(start)},${n(start + duration)})'`;
  plan.options.image_overlays.forEach((o, i) => {
    const input = plan.clips.length + i;
    const scale = o.width ? `scale=${o.width}:-2,` : "";
    filters.push(`[${input}:v]${scale}format=rgba[io${i}]`);
    filters.push(`[${current}][io${i}]overlay=x=${o.x}:y=${o.y}:eof_action=repeat:${window(o.start_time, o.duration)}[vo${i}]`);
    current = `vo${i}`;
  });
  plan.options.text_overlays.forEach((t, i) => {
    const margin = Math.round(plan.frame.height * 0.05);
    const [x, y] =
      t.x !== undefined && t.y !== undefined
        ? [String(t.x), String(t.y)]
        : ["(w-text_w)/2", t.position === "top" ? String(margin) : t.position === "center" ? "(h-text_h)/2" : `h-text_h-${margin}`];
    const box = t.box ? `:box=1:boxcolor=${t.box_color}:boxborderw=${Math.max(2, Math.round(t.font_size / 4))}` : "";
    filters.push(
      `[${current}]drawtext=fontfile=${filterPath(composeFont)}:textfile=${filterPath(plan.textFiles[i]!)}:expansion=none:fontsize=${t.font_size}:fontcolor=${t.color}${box}:x=${x}:y=${y}:${window(t.start_time, t.duration)}[vt${i}]`,
    );
    current = `vt${i}`;
  });
  return { filters, out: current };
}

/**
 * The sound: the clips' own, with each audio file placed at its start and volume; with duck_music,
 * music is compressed by the voice (sidechain) so it dips while someone speaks. The mix lasts as long
 * as the video; `loudness` is loudnorm's second pass (absent when measuring).
 */
export function audioMixGraph(plan: Pick<ComposePlan, "options" | "clips" | "durationSec">, clipAudio: string, loudness: string | undefined): { filters: string[]; out: string } {
  const { options } = plan;
  const filters: string[] = [];
  const first = plan.clips.length + options.image_overlays.length;
  const placed = options.audio.map((a, i) => {
    const ms = Math.round(a.start * 1000);
    filters.push(`[${first + i}:a]${audioFormat},volume=${n(a.volume)}${ms > 0 ? `,adelay=${ms}:all=1` : ""}[m${i}]`);
    return { label: `m${i}`, role: a.role };
  });
  const mixOf = (labels: string[], out: string) => {
    if (labels.length === 1) return labels[0]!;
    filters.push(`${labels.map((l) => `[${l}]`).join("")}amix=inputs=${labels.length}:duration=longest:normalize=0[${out}]`);
    return out;
  };
  const voices = placed.filter((p) => p.role === "voice").map((p) => p.label);
  const music = placed.filter((p) => p.role === "music").map((p) => p.label);
  let layers = [clipAudio, ...placed.map((p) => p.label)];
  if (options.duck_music && voices.length && music.length) {
    const voice = mixOf(voices, "voice");
    const bed = mixOf(music, "music");
    filters.push(`[${voice}]asplit=2[voicemix][voicekey]`, `[${bed}][voicekey]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=400[ducked]`);
    layers = [clipAudio, "voicemix", "ducked", ...placed.filter((p) => !p.role).map((p) => p.label)];
  }
  // normalize=0: each layer keeps the volume asked; loudnorm sets the level of the whole.
  const tail = [`atrim=duration=${n(plan.durationSec)}`, ...(loudness ? [loudness] : []), `aresample=${SAMPLE_RATE}`, "aformat=channel_layouts=stereo"];
  if (layers.length === 1) filters.push(`[${layers[0]}]apad,${tail.join(",")}[aout]`);
  else filters.push(`${layers.map((l) => `[${l}]`).join("")}amix=inputs=${layers.length}:duration=first:normalize=0,apad,${tail.join(",")}[aout]`);
  return { filters, out: "aout" };
}

/** The loudness-measuring pass: the audio graph alone into loudnorm's print_format=json. */
export function composeMeasureArgs(plan: ComposePlan): string[] {
  const clipAudio = clipAudioGraph(plan);
  const mix = audioMixGraph(plan, clipAudio.out, `loudnorm=I=${plan.options.loudness}:TP=-1.5:LRA=11:print_format=json`);
  return ["-y", ...inputArgs(plan), "-filter_complex", [...clipAudio.filters, ...mix.filters].join(";"), "-map", `[${mix.out}]`, "-f", "null", "-"];
}

/**
 * The ffmpeg arguments (without "ffmpeg") of the render the handler runs: `measured` is the
 * measuring pass's loudnorm reading (parseLoudnorm of composeMeasureArgs' log), absent for no
 * normalisation. The benchmark runs these very arguments by hand.
 */
export function composeFfmpegArgs(plan: ComposePlan, outputPath: string, measured?: LoudnormMeasurement): string[] {
  const video = clipVideoGraph(plan);
  const overlays = overlayGraph(plan, video.out);
  const clipAudio = clipAudioGraph(plan);
  const mix = audioMixGraph(plan, clipAudio.out, loudnormFilter(plan.options.loudness, measured));
  const graph = [...video.filters, ...overlays.filters, ...clipAudio.filters, ...mix.filters].join(";");
  return [
    "-y",
    ...inputArgs(plan),
    "-filter_complex",
    graph,
    "-map",
    `[${overlays.out}]`,
    "-map",
    `[${mix.out}]`,
    "-c:v",
    "libx264",
    "-preset",
    "fast",
    "-crf",
    "20",
    "-pix_fmt",
    "yuv420p",
    "-r",
    n(plan.options.fps),
    "-c:a",
    "aac",
    "-b:a",
    "192k",
    "-t",
    n(plan.durationSec),
    "-movflags",
    "+faststart",
    "-f",
    "mp4",
    outputPath,
  ];
}

export interface ComposeRun {
  options: ComposeOptions;
  /** Local paths, in the order of the input's clips, image_overlays and audio. */
  clipPaths: string[];
  imageOverlayPaths: string[];
  audioPaths: string[];
  outputPath: string;
  workDir: string;
  limits: JobLimits;
  signal?: AbortSignal;
  onProgress?: (percent: number) => void;
}

/** What compose measures of its output itself; its length and size come from storage's measurement (ADR 056). */
export interface ComposeResult {
  loudness_lufs: number | null;
}

const probeAll = (paths: string[], what: string, signal?: AbortSignal) =>
  Promise.all(
    paths.map(async (path, i): Promise<ComposeSource> => {
      const info = await probe(path, { signal }).catch((err: Error) => {
        throw new JobFailure("INVALID_MEDIA", `${what}[${i}] is not a readable media file`, { cause: err });
      });
      return { path, info };
    }),
  );

/** Probes the inputs and plans the composition: what the handler and the benchmark both start from. */
export async function planComposeFromPaths(run: Omit<ComposeRun, "outputPath" | "onProgress">): Promise<ComposePlan> {
  const [clips, imageOverlays, audio] = await Promise.all([
    probeAll(run.clipPaths, "clips", run.signal),
    probeAll(run.imageOverlayPaths, "image_overlays", run.signal),
    probeAll(run.audioPaths, "audio", run.signal),
  ]);
  return planCompose({ options: run.options, clips, imageOverlays, audio, workDir: run.workDir, limits: run.limits });
}

/** Composes the clips into an H.264/AAC mp4 at `outputPath`: measure the mix's loudness, then render once. */
export async function compose(run: ComposeRun): Promise<ComposeResult> {
  const { signal, onProgress = () => {} } = run;
  const plan = await planComposeFromPaths(run);
  const { stderr } = await runFfmpegArgs(composeMeasureArgs(plan), { signal, durationSec: plan.durationSec, onProgress: (p) => onProgress(p * 0.1) });
  const measured = parseLoudnorm(stderr);
  await runFfmpegArgs(composeFfmpegArgs(plan, run.outputPath, measured), { signal, durationSec: plan.durationSec, onProgress: (p) => onProgress(10 + p * 0.9) });

  const { loudnessLufs } = await measureAudio(run.outputPath, {}, signal);
  return { loudness_lufs: Number.isFinite(loudnessLufs) ? Math.round(loudnessLufs * 10) / 10 : null };
}

/** The video.compose handler: fetch every file the input names, compose, upload the mp4. */
export async function composeVideo(ctx: JobContext<ComposeOptions>): Promise<JobOutput> {
  const { clips, image_overlays, audio } = ctx.input;
  // Each file once, however many times the input names it (a logo shown twice).
  const ids = [...new Set([...clips, ...image_overlays, ...audio].map((f) => f.file_id))];
  const files = await ctx.stage("fetch", async () => new Map(await Promise.all(ids.map(async (id) => [id, await ctx.fetchInput(id)] as const))));
  const pathOf = (f: { file_id: string }) => files.get(f.file_id)!.path;

  const outputPath = join(ctx.tmpDir, "composed.mp4");
  const composed = await ctx.stage("compose", () =>
    compose({
      options: ctx.input,
      clipPaths: clips.map(pathOf),
      imageOverlayPaths: image_overlays.map(pathOf),
      audioPaths: audio.map(pathOf),
      outputPath,
      workDir: ctx.tmpDir,
      limits: ctx.limits,
      signal: ctx.signal,
      onProgress: (p) => ctx.progress(5 + p * 0.9),
    }),
  );
  const name = `${stem(files.get(clips[0]!.file_id)!.filename, "video")}-composed.mp4`;
  const file = await ctx.stage("upload", () => ctx.uploadOutput(outputPath, name, "video/mp4"));
  const { duration, width, height, fps } = outputFacts(file);
  return { files: [file], duration, width, height, fps, ...composed };
}
