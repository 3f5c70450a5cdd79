import { describe, expect, it } from "vitest";
import { groupWords, mergeSamples, type SampledWord } from "./text-regions.ts";

const word = (text: string, x: number, y: number, width = 40, height = 20, confidence = 90): SampledWord => ({ text, confidence, box: { x, y, width, height } });

describe("groupWords", () => {
  it("joins the words of one caption line in reading order, and keeps a far caption apart", () => {
    const groups = groupWords([word("50%", 75, 40, 30), word("SALE", 20, 40, 45), word("logo", 200, 150)]);
    expect(groups).toHaveLength(2);
    expect(groups.find((g) => g.text.startsWith("SALE"))).toMatchObject({ text: "SALE 50%", box: { x: 20, y: 40, width: 85, height: 20 } });
    expect(groups.find((g) => g.text === "logo")?.box).toEqual({ x: 200, y: 150, width: 40, height: 20 });
  });

  it("joins two lines of one caption top to bottom", () => {
    const [g] = groupWords([word("now", 20, 64), word("buy", 20, 40)]);
    expect(g?.text).toBe("buy now");
  });
});

describe("mergeSamples", () => {
  const at = (time: number, ...words: SampledWord[]) => ({ time, words });

  it("follows a caption over consecutive samples into one region, timed halfway to the samples without it", () => {
    const regions = mergeSamples([at(0), at(0.5), at(1, word("SALE", 20, 40)), at(1.5, word("SALE", 21, 41)), at(2, word("SALE", 20, 40)), at(2.5)], 0.5, 3);
    expect(regions).toEqual([{ start_time: 0.75, end_time: 2.25, bbox: { x: 20, y: 40, width: 41, height: 21 }, text: "SALE", confidence: 90 }]);
  });

  it("forgives one sample where OCR missed the caption, but not a caption somewhere else", () => {
    const regions = mergeSamples([at(0, word("A", 10, 10)), at(0.5), at(1, word("A", 10, 10)), at(1.5, word("B", 100, 80))], 0.5, 2);
    expect(regions.map((r) => [r.text, r.start_time, r.end_time])).toEqual([
      ["A", 0, 1.25],
      ["B", 1.25, 1.75],
    ]);
  });

  it("starts a new region when the same place shows text again after a long gap, and keeps the most read text", () => {
    const regions = mergeSamples([at(0, word("SALE", 20, 40)), at(0.5, word("SA1E", 20, 40, 40, 20, 61)), at(1, word("SALE", 20, 40)), at(1.5), at(2), at(2.5), at(3, word("SALE", 20, 40))], 0.5, 4);
    expect(regions).toHaveLength(2);
    expect(regions[0]).toMatchObject({ text: "SALE", start_time: 0, end_time: 1.25, confidence: 80.3 });
    expect(regions[1]).toMatchObject({ start_time: 2.75, end_time: 3.25 });
  });
});
