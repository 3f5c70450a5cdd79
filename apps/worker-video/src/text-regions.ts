import type { PixelBox } from "@cutroom/contracts";

/** A word OCR read on one sampled frame, in the video's pixels. */
export interface SampledWord {
  text: string;
  confidence: number;
  box: PixelBox;
}

/** Burnt-in text found over time: where, when, what, how sure. */
export interface TextRegion {
  start_time: number;
  end_time: number;
  bbox: PixelBox;
  text: string;
  /** The mean confidence of its words, 0–100. */
  confidence: number;
}

const right = (b: PixelBox) => b.x + b.width;
const bottom = (b: PixelBox) => b.y + b.height;

export function union(a: PixelBox, b: PixelBox): PixelBox {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.max(right(a), right(b)) - x, height: Math.max(bottom(a), bottom(b)) - y };
}

export function intersection(a: PixelBox, b: PixelBox): PixelBox | undefined {
  const x = Math.max(a.x, b.x);
  const y = Math.max(a.y, b.y);
  const w = Math.min(right(a), right(b)) - x;
  const h = Math.min(bottom(a), bottom(b)) - y;
  return w > 0 && h > 0 ? { x, y, width: w, height: h } : undefined;
}

const area = (b: PixelBox) => b.width * b.height;

/** Whether two boxes cover the same thing: their overlap is at least half of the smaller one. */
export function sameArea(a: PixelBox, b: PixelBox): boolean {
  const i = intersection(a, b);
  return i !== undefined && area(i) >= 0.5 * Math.min(area(a), area(b));
}

/**
 * The words of one frame joined into lines and blocks: words whose boxes, grown by the taller one's
 * height sideways and half of it up and down, touch are one caption ("SALE" and "50%"), read top to bottom, left to right.
 */
export function groupWords(words: readonly SampledWord[]): { box: PixelBox; text: string; confidence: number }[] {
  const groups: SampledWord[][] = [];
  for (const word of words) {
    const touching = groups.filter((g) => g.some((w) => near(w.box, word.box)));
    const merged = [word, ...touching.flat()];
    for (const g of touching) groups.splice(groups.indexOf(g), 1);
    groups.push(merged);
  }
  return groups.map((g) => {
    const sorted = [...g].sort((a, b) => (Math.abs(a.box.y - b.box.y) < Math.min(a.box.height, b.box.height) / 2 ? a.box.x - b.box.x : a.box.y - b.box.y));
    return {
      box: sorted.map((w) => w.box).reduce(union),
      text: sorted.map((w) => w.text).join(" "),
      confidence: sorted.reduce((s, w) => s + w.confidence, 0) / sorted.length,
    };
  });
}

function near(a: PixelBox, b: PixelBox): boolean {
  // Word spaces run up to about a glyph's height; lines of one caption sit within half a height.
  const mx = Math.max(a.height, b.height);
  const my = mx / 2;
  return intersection({ x: a.x - mx, y: a.y - my, width: a.width + 2 * mx, height: a.height + 2 * my }, b) !== undefined;
}

/**
 * Joins each sample's captions into regions over time: a caption continues a region when it covers
 * the same area in the next sample (one missed sample is forgiven: OCR blinks). A region runs from
 * halfway between its first sample and the one before to halfway between its last and the one
 * after (where the text really appeared is somewhere in between); its box is the union of its
 * captions' boxes, its text the one read most often.
 */
export function mergeSamples(samples: readonly { time: number; words: readonly SampledWord[] }[], interval: number, duration: number): TextRegion[] {
  interface Track {
    box: PixelBox;
    first: number;
    last: number;
    lastIndex: number;
    texts: Map<string, number>;
    confidences: number[];
  }
  const open: Track[] = [];
  const done: Track[] = [];
  samples.forEach((sample, index) => {
    for (const t of open.filter((t) => index - t.lastIndex > 2)) {
      open.splice(open.indexOf(t), 1);
      done.push(t);
    }
    for (const caption of groupWords(sample.words)) {
      const track = open.find((t) => t.lastIndex < index && sameArea(t.box, caption.box));
      if (track) {
        track.box = union(track.box, caption.box);
        track.last = sample.time;
        track.lastIndex = index;
        track.texts.set(caption.text, (track.texts.get(caption.text) ?? 0) + 1);
        track.confidences.push(caption.confidence);
      } else {
        open.push({ box: caption.box, first: sample.time, last: sample.time, lastIndex: index, texts: new Map([[caption.text, 1]]), confidences: [caption.confidence] });
      }
    }
  });
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return [...done, ...open]
    .map((t) => ({
      start_time: round(Math.max(0, t.first - interval / 2)),
      end_time: round(Math.min(duration, t.last + interval / 2)),
      bbox: t.box,
      text: [...t.texts].sort((a, b) => b[1] - a[1])[0]![0],
      confidence: Math.round((t.confidences.reduce((s, c) => s + c, 0) / t.confidences.length) * 10) / 10,
    }))
    .sort((a, b) => a.start_time - b.start_time || a.bbox.y - b.bbox.y || a.bbox.x - b.bbox.x);
}
