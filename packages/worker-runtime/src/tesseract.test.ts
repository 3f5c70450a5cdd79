import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ocrImage, parseTesseractTsv } from "./tesseract.ts";

describe("parseTesseractTsv", () => {
  it("keeps the words (level 5) with their boxes and confidence, not the blocks or the empty words", () => {
    const tsv = [
      "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext",
      "1\t1\t0\t0\t0\t0\t0\t0\t640\t480\t-1\t",
      "5\t1\t1\t1\t1\t1\t88\t160\t301\t80\t95.817787\tSALE",
      "5\t1\t1\t1\t1\t2\t444\t160\t196\t80\t56.5\t50%",
      "5\t1\t1\t1\t1\t3\t10\t10\t5\t5\t95\t ",
    ].join("\n");
    expect(parseTesseractTsv(tsv)).toEqual([
      { text: "SALE", confidence: 95.817787, x: 88, y: 160, width: 301, height: 80 },
      { text: "50%", confidence: 56.5, x: 444, y: 160, width: 196, height: 80 },
    ]);
  });
});

describe("ocrImage", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cutroom-ocr-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("reads big text drawn on a picture, where it was drawn", async () => {
    const png = join(dir, "sale.png");
    execFileSync("ffmpeg", [
      "-v", "error", "-f", "lavfi", "-i", "color=c=0x204060:s=480x200", "-frames:v", "1",
      "-vf", "drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:text=SALE:fontsize=60:fontcolor=white:x=100:y=60", png,
    ]);
    const words = await ocrImage(png);
    expect(words).toEqual([expect.objectContaining({ text: "SALE", confidence: expect.any(Number) })]);
    expect(words[0]!.confidence).toBeGreaterThan(80);
    expect(words[0]!.x).toBeGreaterThanOrEqual(95);
    expect(words[0]!.x).toBeLessThan(110);
  });
});
