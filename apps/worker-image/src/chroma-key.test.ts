import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { jobLimits } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromaKey, inspectBorder, toAlphaPng } from "./chroma-key.ts";
import { createImageEngine } from "./image-engine.ts";

const limits = jobLimits("free");
let dir: string;
let greenScreen: string;

/** A studio shot: a red-and-skin subject (a disc and a box) in front of a lit, slightly uneven green screen. */
async function makeGreenScreen(path: string, width = 320, height = 240) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="screen" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#2fb84a"/><stop offset="1" stop-color="#22a83c"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#screen)"/>
    <circle cx="${width / 2}" cy="${height / 2 - 20}" r="40" fill="#d23c28"/>
    <rect x="${width / 2 - 30}" y="${height / 2 + 20}" width="60" height="70" fill="#e0b090"/>
  </svg>`;
  await sharp(Buffer.from(svg)).png().toFile(path);
}

async function pixel(path: string, x: number, y: number) {
  const { data, info } = await sharp(path).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * 4;
  return { r: data[i]!, g: data[i + 1]!, b: data[i + 2]!, a: data[i + 3]! };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cutroom-chroma-"));
  greenScreen = join(dir, "green.png");
  await makeGreenScreen(greenScreen);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("inspectBorder", () => {
  it("finds a green screen all around the subject, and its colour", async () => {
    const report = await inspectBorder(greenScreen, limits);
    expect(report).toMatchObject({ width: 320, height: 240 });
    expect(report.green_share).toBeGreaterThan(0.95);
    const [r, g, b] = report.key!;
    expect(g).toBeGreaterThan(150);
    expect(g - Math.max(r, b)).toBeGreaterThan(100);
  });

  it("finds no green screen around an ordinary photo", async () => {
    const photo = join(dir, "photo.png");
    await sharp({ create: { width: 200, height: 150, channels: 3, background: "#8090a0" } }).png().toFile(photo);
    expect(await inspectBorder(photo, limits)).toMatchObject({ green_share: 0, key: null });
  });
});

describe("chromaKey", () => {
  it("makes the green screen transparent and keeps the subject opaque, in its own colours", async () => {
    const out = join(dir, "keyed.png");
    const { key } = await inspectBorder(greenScreen, limits);
    const keyed = await chromaKey(greenScreen, out, { key: key!, limits });
    expect(keyed).toMatchObject({ width: 320, height: 240 });
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.channels, meta.hasAlpha]).toEqual(["png", 4, true]);

    for (const [x, y] of [[2, 2], [317, 2], [2, 237], [317, 237], [40, 120], [280, 60]] as const) expect((await pixel(out, x, y)).a).toBe(0);
    const disc = await pixel(out, 160, 100);
    expect(disc).toMatchObject({ a: 255 });
    expect(disc.r).toBeGreaterThan(180);
    expect((await pixel(out, 160, 170)).a).toBe(255);
    // Everything but the subject (about 6,800 of 76,800 pixels) is gone.
    expect(keyed.transparent_share).toBeGreaterThan(0.85);
    expect(keyed.transparent_share).toBeLessThan(0.95);
  });
});

describe("toAlphaPng", () => {
  it("gives a model's opaque JPEG an alpha channel at the input's size", async () => {
    const jpeg = join(dir, "model.jpg");
    await sharp({ create: { width: 100, height: 50, channels: 3, background: "#ffffff" } }).jpeg().toFile(jpeg);
    const out = join(dir, "model.png");
    expect(await toAlphaPng(jpeg, out, { width: 320, height: 240, limits })).toMatchObject({ width: 320, height: 240, transparent_share: 0 });
    expect(await sharp(out).metadata()).toMatchObject({ format: "png", hasAlpha: true, width: 320, height: 240 });
  });

  it("refuses bytes that are no image as INVALID_MEDIA", async () => {
    const junk = join(dir, "junk.png");
    await writeFile(junk, "not a png at all");
    await expect(toAlphaPng(junk, join(dir, "junk-out.png"), { width: 10, height: 10, limits })).rejects.toMatchObject({ code: "INVALID_MEDIA" });
  });
});

describe("the image engine", () => {
  it("keys a green screen in its child process", async () => {
    const engine = createImageEngine();
    try {
      const signal = new AbortController().signal;
      const report = await engine.inspectBorder(greenScreen, limits, signal);
      const out = join(dir, "engine.png");
      await engine.chromaKey(greenScreen, out, { key: report.key!, limits }, signal);
      expect((await pixel(out, 2, 2)).a).toBe(0);
      expect((await pixel(out, 160, 100)).a).toBe(255);
    } finally {
      engine.close();
    }
  });
});
