import sharp from "sharp";

/** A real PNG made by sharp: a colour gradient of the given size. */
export async function makePng(width = 64, height = 48): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = (x * 255) / width;
      raw[i + 1] = (y * 255) / height;
      raw[i + 2] = 128;
    }
  return new Uint8Array(await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A short real H.264 + AAC clip made by ffmpeg's test sources. */
export function makeVideo(seconds = 1, size = "160x120"): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "e2e-media-"));
  const out = join(dir, "clip.mp4");
  execFileSync("ffmpeg", [
    "-v", "error", "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=25:duration=${seconds}`,
    "-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`,
    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", out,
  ]);
  const bytes = new Uint8Array(readFileSync(out));
  rmSync(dir, { recursive: true, force: true });
  return bytes;
}

/** Runs ffprobe and returns its JSON. */
export function ffprobe(bytes: Uint8Array, ext: string): any {
  const dir = mkdtempSync(join(tmpdir(), "e2e-probe-"));
  const file = join(dir, `f.${ext}`);
  writeFileSync(file, bytes);
  try {
    return JSON.parse(execFileSync("ffprobe", ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", file]).toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mean R, G, B of the frame at `atSec`, via ffmpeg → raw RGB → averages. */
export function meanColour(bytes: Uint8Array, ext: string, atSec = 0.5): [number, number, number] {
  const dir = mkdtempSync(join(tmpdir(), "e2e-frame-"));
  const file = join(dir, `f.${ext}`);
  writeFileSync(file, bytes);
  try {
    const raw = execFileSync("ffmpeg", ["-v", "error", "-ss", String(atSec), "-i", file, "-frames:v", "1", "-vf", "scale=64:48", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    const sums = [0, 0, 0];
    for (let i = 0; i < raw.length; i += 3) for (let c = 0; c < 3; c++) sums[c]! += raw[i + c]!;
    const n = raw.length / 3;
    return [sums[0]! / n, sums[1]! / n, sums[2]! / n];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A noisy recording: a 440 Hz tone for the first `toneSec`, then noise only for `gapSec`,
 * with pink noise throughout. Returns WAV bytes.
 */
export function makeNoisyAudio(toneSec = 2, gapSec = 2): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "e2e-audio-"));
  const out = join(dir, "noisy.wav");
  const total = toneSec + gapSec;
  execFileSync("ffmpeg", [
    "-v", "error",
    "-f", "lavfi", "-i", `sine=frequency=440:duration=${toneSec}:sample_rate=48000`,
    "-f", "lavfi", "-i", `anoisesrc=color=pink:amplitude=0.08:duration=${total}:sample_rate=48000`,
    "-filter_complex", `[0:a]apad=whole_dur=${total},volume=0.5[t];[t][1:a]amix=inputs=2:duration=longest:normalize=0[out]`,
    "-map", "[out]", "-ac", "1", out,
  ]);
  const bytes = new Uint8Array(readFileSync(out));
  rmSync(dir, { recursive: true, force: true });
  return bytes;
}

/** RMS level in dBFS of [from, to) seconds of an audio file. */
export function rmsDb(bytes: Uint8Array, ext: string, from: number, to: number): number {
  const dir = mkdtempSync(join(tmpdir(), "e2e-rms-"));
  const file = join(dir, `a.${ext}`);
  writeFileSync(file, bytes);
  try {
    const r = spawnSync("ffmpeg", ["-v", "info", "-i", file, "-af", `atrim=${from}:${to},astats=measure_overall=RMS_level:measure_perchannel=none`, "-f", "null", "-"]);
    return parseRms(r.stderr.toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseRms(log: string): number {
  const m = [...log.matchAll(/RMS level dB:\s*(-?[\d.]+|-inf)/g)].at(-1);
  if (!m) throw new Error(`no RMS level in ffmpeg output: ${log.slice(-500)}`);
  return m[1] === "-inf" ? -Infinity : Number(m[1]);
}
