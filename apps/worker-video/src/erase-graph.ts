import type { EraseMethod, EraseRegion, PixelBox } from "@cutroom/contracts";
import { intersection } from "./text-regions.ts";

type Frame = { width: number; height: number };

/** An area to erase over a time range: given by the client, or found by detection. */
export interface Erasure {
  start_time: number;
  end_time: number;
  bbox: PixelBox;
  source: "given" | "detected";
  /** What detection read there. */
  text?: string;
}

export interface PlannedErasure extends Erasure {
  /** A protection region overlaps it in space and time: its pixels there are kept. */
  protected_overlap: boolean;
}

export interface SkippedErasure extends Erasure {
  reason: "protected" | "outside the frame";
}

const overlapsInTime = (a: { start_time: number; end_time: number }, b: { start_time: number; end_time: number }) => a.start_time < b.end_time && b.start_time < a.end_time;

/** `box` less `cut`: up to four boxes (above, below, left, right of the cut). */
export function subtractBox(box: PixelBox, cut: PixelBox): PixelBox[] {
  const i = intersection(box, cut);
  if (!i) return [box];
  const out: PixelBox[] = [];
  const [bx2, by2, ix2, iy2] = [box.x + box.width, box.y + box.height, i.x + i.width, i.y + i.height];
  if (i.y > box.y) out.push({ x: box.x, y: box.y, width: box.width, height: i.y - box.y });
  if (iy2 < by2) out.push({ x: box.x, y: iy2, width: box.width, height: by2 - iy2 });
  if (i.x > box.x) out.push({ x: box.x, y: i.y, width: i.x - box.x, height: i.height });
  if (ix2 < bx2) out.push({ x: ix2, y: i.y, width: bx2 - ix2, height: i.height });
  return out;
}

/** Whether protections cover the whole of `e`'s box during the whole of its time. */
function fullyProtected(e: Erasure, protections: readonly EraseRegion[]): boolean {
  const active = protections.filter((p) => overlapsInTime(p, e) && intersection(p.bbox, e.bbox));
  if (active.length === 0) return false;
  const cuts = [e.start_time, e.end_time, ...active.flatMap((p) => [p.start_time, p.end_time])].filter((t) => t >= e.start_time && t <= e.end_time).sort((a, b) => a - b);
  for (let k = 1; k < cuts.length; k++) {
    const [from, to] = [cuts[k - 1]!, cuts[k]!];
    if (to <= from) continue;
    let left = [e.bbox];
    for (const p of active.filter((p) => p.start_time <= from && p.end_time >= to)) left = left.flatMap((b) => subtractBox(b, p.bbox));
    if (left.length > 0) return false;
  }
  return true;
}

/**
 * The box ffmpeg's delogo can take: it interpolates from the pixels around the box, so the box
 * keeps off the frame's outermost row and column. Undefined when nothing of it is left.
 */
export function clampToFrame(b: PixelBox, frame: Frame): PixelBox | undefined {
  const x = Math.max(1, b.x);
  const y = Math.max(1, b.y);
  // Of an odd-sized frame, the last column (row) is cut off anyway, and delogo refuses a box touching it.
  const w = Math.min(b.x + b.width, frame.width - (frame.width % 2) - 1) - x;
  const h = Math.min(b.y + b.height, frame.height - (frame.height % 2) - 1) - y;
  return w >= 1 && h >= 1 ? { x, y, width: w, height: h } : undefined;
}

/**
 * Which erasures run: each kept inside the frame, those that protection regions cover entirely
 * (in space and in time) skipped, and the others flagged when a protection overlaps them (the
 * graph puts the protected pixels back after erasing).
 */
export function planErasures(erasures: readonly Erasure[], protections: readonly EraseRegion[], frame: Frame): { erase: PlannedErasure[]; skipped: SkippedErasure[] } {
  const erase: PlannedErasure[] = [];
  const skipped: SkippedErasure[] = [];
  for (const e of erasures) {
    const bbox = clampToFrame(e.bbox, frame);
    if (!bbox) {
      skipped.push({ ...e, reason: "outside the frame" });
      continue;
    }
    const inFrame = { ...e, bbox };
    if (fullyProtected(inFrame, protections)) {
      skipped.push({ ...inFrame, reason: "protected" });
      continue;
    }
    erase.push({ ...inFrame, protected_overlap: protections.some((p) => overlapsInTime(p, inFrame) && intersection(p.bbox, bbox) !== undefined) });
  }
  return { erase, skipped };
}

/** A box grown to even coordinates inside the frame: crop and overlay then move 4:2:0 pictures pixel for pixel. */
export function evenBox(b: PixelBox, frame: Frame): PixelBox {
  const x = Math.max(0, b.x - (b.x % 2));
  const y = Math.max(0, b.y - (b.y % 2));
  const r = Math.min(frame.width - (frame.width % 2), b.x + b.width + ((b.x + b.width) % 2));
  const btm = Math.min(frame.height - (frame.height % 2), b.y + b.height + ((b.y + b.height) % 2));
  return { x, y, width: Math.max(2, r - x), height: Math.max(2, btm - y) };
}

const t = (n: number) => String(Math.round(n * 1000) / 1000);
const enable = (r: { start_time: number; end_time: number }) => `enable='between(t,${t(r.start_time)},${t(r.end_time)})'`;
const delogo = (e: PlannedErasure) => `delogo=x=${e.bbox.x}:y=${e.bbox.y}:w=${e.bbox.width}:h=${e.bbox.height}:${enable(e)}`;

/**
 * The -filter_complex graph that erases `erase` from input 0's video by `method` and puts the
 * pixels of the protection regions that overlap them back (cropped from the untouched source),
 * ending in the label [v]: even-sized yuv420p, as H.264 takes.
 */
export function eraseFilterGraph(erase: readonly PlannedErasure[], protections: readonly EraseRegion[], method: EraseMethod, frame: Frame): string {
  const used = protections.filter((p) => erase.some((e) => overlapsInTime(p, e) && intersection(p.bbox, e.bbox)));
  const parts: string[] = [];
  let label = "[0:v]";
  let n = 0;
  const next = () => `[s${n++}]`;
  if (used.length > 0) {
    const keep = used.map((_p, i) => `[keep${i}]`);
    const work = next();
    parts.push(`${label}split=${used.length + 1}${work}${keep.join("")}`);
    used.forEach((p, i) => {
      const b = evenBox(p.bbox, frame);
      parts.push(`${keep[i]}crop=${b.width}:${b.height}:${b.x}:${b.y}[prot${i}]`);
    });
    label = work;
  }
  const blurOver = (e: PlannedErasure, blur: (b: PixelBox) => string) => {
    const b = evenBox(e.bbox, frame);
    const [a, c, out] = [next(), next(), next()];
    parts.push(`${label}split${a}${c}`, `${c}crop=${b.width}:${b.height}:${b.x}:${b.y},${blur(b)}[blur${n}]`, `${a}[blur${n}]overlay=${b.x}:${b.y}:${enable(e)}${out}`);
    label = out;
  };
  function blurOf(kind: "box" | "soft") {
    return (b: PixelBox) => {
      const side = Math.min(b.width, b.height);
      // boxblur refuses a radius past half the plane's side; its chroma planes are half the size.
      if (kind === "box") return `boxblur=luma_radius=${Math.max(1, Math.floor(side / 2) - 1)}:luma_power=2:chroma_radius=${Math.max(1, Math.floor(side / 4) - 1)}:chroma_power=2`;
      return `gblur=sigma=${Math.max(1, Math.round(side / 6))}`;
    };
  }
  for (const e of erase) {
    if (method === "blur") {
      blurOver(e, blurOf("box"));
      continue;
    }
    const out = next();
    parts.push(`${label}${delogo(e)}${out}`);
    label = out;
    if (method === "inpaint") blurOver(e, blurOf("soft"));
  }
  used.forEach((p, i) => {
    const b = evenBox(p.bbox, frame);
    const out = next();
    parts.push(`${label}[prot${i}]overlay=${b.x}:${b.y}:${enable(p)}${out}`);
    label = out;
  });
  parts.push(`${label}crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0,format=yuv420p[v]`);
  return parts.join(";");
}

/** The ffmpeg command (without `ffmpeg`) of an erasure: the graph over the video, the sound kept (copied when it is AAC). */
export function eraseFfmpegArgs(run: { inputPath: string; outputPath: string; graph: string; audioCodec: string | null }): string[] {
  const audio = run.audioCodec === null ? ["-an"] : ["-map", "0:a:0", ...(run.audioCodec === "aac" ? ["-c:a", "copy"] : ["-c:a", "aac", "-b:a", "192k"])];
  return [
    "-v", "error", "-i", run.inputPath, "-filter_complex", run.graph, "-map", "[v]", ...audio,
    "-c:v", "libx264", "-preset", "fast", "-crf", "18", "-movflags", "+faststart", "-f", "mp4", "-y", run.outputPath,
  ];
}
