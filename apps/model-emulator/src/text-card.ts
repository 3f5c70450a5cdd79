import type { Seed } from "./determinism.ts";

const XML_ESCAPES: Record<string, string> = { "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" };
const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => XML_ESCAPES[c]!);
// Control characters are not allowed in XML: a prompt holding one would make the whole SVG unreadable.
// biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
const printable = (s: string) => s.replace(/[\u0000-\u001f\u007f]+/g, " ");

/** Lines of at most `perLine` characters, broken at spaces (a longer word is cut); an ellipsis when it does not fit. */
export function wrap(text: string, perLine: number, maxLines: number): string[] {
  const words = printable(text).trim().split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = "";
  for (let word of words) {
    while (word.length > perLine) {
      if (line) lines.push(line);
      lines.push(word.slice(0, perLine));
      word = word.slice(perLine);
      line = "";
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= perLine) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line) lines.push(line);
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  kept[maxLines - 1] = `${kept[maxLines - 1]!.slice(0, Math.max(0, perLine - 1))}…`;
  return kept;
}

const FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";

function textBlock(lines: string[], x: number, yCentre: number, fontSize: number, fill: string): string {
  const lineHeight = fontSize * 1.25;
  const top = yCentre - ((lines.length - 1) * lineHeight) / 2;
  return lines
    .map((l, i) => `<text x="${x}" y="${(top + i * lineHeight).toFixed(1)}" font-family="${FONT}" font-size="${fontSize}" fill="${fill}" text-anchor="middle" dominant-baseline="middle">${escapeXml(l)}</text>`)
    .join("");
}

/**
 * A picture that shows its prompt: a gradient and a few shapes chosen by the seed, the text in the
 * middle and a corner label saying it is synthetic. A person looking at it can tell what was asked.
 */
export function cardSvg(opts: { width: number; height: number; text: string; seed: Seed; label?: string }): string {
  const { width: w, height: h, seed } = opts;
  const short = Math.min(w, h);
  const fontSize = Math.max(10, Math.round(short / 16));
  const perLine = Math.max(8, Math.floor((w * 0.84) / (fontSize * 0.58)));
  const maxLines = Math.max(1, Math.floor((h * 0.7) / (fontSize * 1.25)));
  const lines = wrap(opts.text || "(empty prompt)", perLine, maxLines);
  const shapes = Array.from({ length: 5 }, (_, i) => {
    const cx = Math.round(seed.unit(10 + i) * w);
    const cy = Math.round(seed.unit(20 + i) * h);
    const r = Math.round(short * (0.08 + seed.unit(30 + i) * 0.25));
    return `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${seed.colour(40 + i, i % 2 ? "light" : "dark")}" fill-opacity="0.35"/>`;
  }).join("");
  const labelSize = Math.max(8, Math.round(fontSize * 0.45));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${seed.colour(1, "dark")}"/><stop offset="1" stop-color="${seed.colour(2, "light")}"/></linearGradient></defs>
<rect width="${w}" height="${h}" fill="url(#g)"/>${shapes}
<rect x="${(w * 0.05).toFixed(1)}" y="${(h / 2 - (lines.length * fontSize * 1.25) / 2 - fontSize * 0.6).toFixed(1)}" width="${(w * 0.9).toFixed(1)}" height="${(lines.length * fontSize * 1.25 + fontSize * 1.2).toFixed(1)}" rx="${fontSize / 2}" fill="#000" fill-opacity="0.45"/>
${textBlock(lines, w / 2, h / 2, fontSize, "#ffffff")}
<text x="${w - labelSize}" y="${h - labelSize}" font-family="${FONT}" font-size="${labelSize}" fill="#ffffff" fill-opacity="0.8" text-anchor="end">${escapeXml(opts.label ?? "synthetic · model emulator")}</text>
</svg>`;
}

/** The text on a dark band at the bottom of a transparent picture, to lay over video frames. */
export function captionSvg(opts: { width: number; height: number; text: string }): string {
  const { width: w, height: h } = opts;
  const fontSize = Math.max(10, Math.round(Math.min(w, h) / 18));
  const perLine = Math.max(8, Math.floor((w * 0.9) / (fontSize * 0.58)));
  const lines = wrap(opts.text || "(empty prompt)", perLine, 3);
  const band = lines.length * fontSize * 1.25 + fontSize;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">
<rect x="0" y="${(h - band).toFixed(1)}" width="${w}" height="${band.toFixed(1)}" fill="#000" fill-opacity="0.55"/>
${textBlock(lines, w / 2, h - band / 2, fontSize, "#ffffff")}
</svg>`;
}
