import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { pipeline } from "node:stream/promises";
import archiver from "archiver";
import { runFfmpeg } from "@cutroom/worker-runtime/ffmpeg";

/** How a mask is reshaped before it becomes the alpha channel. */
export interface MatteSettings {
  /** Pixels the mask's edge moves in (tightness above 50) … */
  erodePx: number;
  /** … or out (below 50). */
  dilatePx: number;
  /** Gaussian feather of the edge, in pixels (sigma). */
  featherSigma: number;
  /** Frames averaged over time (1: none): a mask that flickers from frame to frame steadies. */
  temporalFrames: number;
}

// At the extremes the edge moves 3% of the frame's short side (about 32 px at 1080p), feathered by up to 1%.
const MAX_EDGE_SHARE = 0.03;
const MAX_FEATHER_SHARE = 0.01;
const MAX_TEMPORAL_FRAMES = 5;

/** Seed 000's sliders (0–100) as pixels and frames for a frame of `size`: 50 tightness leaves the edge where the model put it. */
export function matteSettings(tightness: number, smoothing: number, size: { width: number; height: number }): MatteSettings {
  const short = Math.min(size.width, size.height);
  const shift = Math.round((Math.abs(tightness - 50) / 50) * Math.max(1, short * MAX_EDGE_SHARE));
  return {
    erodePx: tightness > 50 ? shift : 0,
    dilatePx: tightness < 50 ? shift : 0,
    featherSigma: Math.round((smoothing / 100) * Math.max(1, short * MAX_FEATHER_SHARE) * 10) / 10,
    temporalFrames: 1 + Math.round((smoothing / 100) * (MAX_TEMPORAL_FRAMES - 1)),
  };
}

/**
 * The filters that turn the model's mask (any video) into the alpha plane: grey, cut to black and
 * white (a lossy mask video has soft, noisy edges), moved in or out a pixel per erosion or dilation
 * pass, averaged over neighbouring frames, then feathered.
 */
export function maskFilters(s: MatteSettings, size: { width: number; height: number }): string[] {
  const filters = [`scale=${size.width}:${size.height}:flags=bilinear`, "format=gray", "lut=c0='if(gt(val,127),255,0)'"];
  for (let i = 0; i < s.erodePx; i++) filters.push("erosion");
  for (let i = 0; i < s.dilatePx; i++) filters.push("dilation");
  if (s.temporalFrames > 1) filters.push(`tmix=frames=${s.temporalFrames}`);
  if (s.featherSigma > 0) filters.push(`gblur=sigma=${s.featherSigma}`);
  return filters;
}

export type MatteFormat = "prores_4444" | "vp9" | "png_sequence";

export interface MatteRun {
  /** The footage whose pictures are kept. */
  sourcePath: string;
  /** The model's mask: a video, or an image sequence as an ffmpeg pattern (`mask-%d.png`) with `maskFps`. */
  maskPath: string;
  maskFps?: number;
  size: { width: number; height: number };
  settings: MatteSettings;
  format: MatteFormat;
  /** A file for the video formats; a directory (made) for png_sequence. */
  outputPath: string;
  /** The footage's length: ffmpeg's progress is a time. */
  durationSec: number;
  signal?: AbortSignal;
  onProgress?: (percent: number) => void;
}

const encoders: Record<Exclude<MatteFormat, "png_sequence">, string[]> = {
  // 10-bit 4:4:4 with alpha: what compositors take from a roto pass.
  prores_4444: ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le", "-vendor", "apl0"],
  vp9: ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-b:v", "0", "-crf", "32", "-deadline", "good", "-cpu-used", "5", "-row-mt", "1", "-auto-alt-ref", "0"],
};

/** The footage with the reshaped mask as its alpha channel: a ProRes 4444 or VP9 video, or one RGBA PNG per frame. */
export async function writeMatte(run: MatteRun): Promise<void> {
  const { size, format } = run;
  const mask = maskFilters(run.settings, size).join(",");
  // VP9's 4:2:0 wants even sides; the others keep the footage's exact size.
  const even = format === "vp9" ? ",scale=trunc(iw/2)*2:trunc(ih/2)*2" : "";
  const graph = [`[1:v]${mask}[alpha]`, `[0:v]scale=${size.width}:${size.height},format=rgba[rgb]`, `[rgb][alpha]alphamerge${even}[out]`];
  let output = run.outputPath;
  if (format === "png_sequence") {
    await mkdir(run.outputPath, { recursive: true });
    output = join(run.outputPath, "frame-%05d.png");
  }
  await runFfmpeg(
    (cmd) => {
      cmd.input(run.sourcePath);
      cmd.input(run.maskPath);
      if (run.maskFps) cmd.inputOptions(["-framerate", String(run.maskFps), "-start_number", "1"]);
      cmd.complexFilter(graph).outputOptions(["-map", "[out]", "-an"]);
      if (format === "png_sequence") cmd.outputOptions(["-pix_fmt", "rgba", "-start_number", "1"]);
      else cmd.outputOptions(encoders[format]);
      cmd.output(output);
    },
    { signal: run.signal, onProgress: run.onProgress, durationSec: run.durationSec },
  );
}

/** The PNGs of a png_sequence directory, in frame order. */
export async function sequenceFrames(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((n) => /^frame-\d+\.png$/.test(n))
    .sort()
    .map((n) => join(dir, n));
}

/** Stores `files` in a zip at `zipPath`, in order, under their own names; PNGs are compressed already, so they are stored as they are. */
export async function zipFiles(files: readonly string[], zipPath: string, folder: string): Promise<void> {
  const zip = archiver("zip", { store: true });
  const done = pipeline(zip, createWriteStream(zipPath));
  // append, not file(): file() stats several files at once and adds each as its stat returns, out of order.
  for (const file of files) zip.append(createReadStream(file), { name: `${folder}/${basename(file)}` });
  await zip.finalize();
  await done;
}
