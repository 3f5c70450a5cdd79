import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { jobLimits } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createImageEngine } from "./image-engine.ts";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// The widest tier's bounds: these tests are about resizing, not limits.
const limits = jobLimits("enterprise");

describe("the image engine (sharp in child processes)", () => {
  // Every resize goes to a child here, however small.
  const engine = createImageEngine({ inlineMaxPixels: 0 });
  let dir: string;
  let photo: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "engine-"));
    photo = join(dir, "photo.png");
    await sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } }).png().toFile(photo);
  });
  afterAll(async () => {
    engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("resizes as resizeImage does, and reuses a warm process for the next job", async () => {
    const out = await engine.resize(photo, join(dir, "a.webp"), { width: 32, height: 24, fit: "fill", format: "webp", quality: 80, limits }, new AbortController().signal);
    expect(out).toMatchObject({ width: 32, height: 24, format: "webp" });
    const [pid] = engine.pids();
    await engine.resize(photo, join(dir, "b.png"), { width: 16, fit: "cover", format: "png", quality: 80, limits }, new AbortController().signal);
    expect(engine.pids()).toEqual([pid]);
  });

  it("keeps INVALID_MEDIA a JobFailure across the process boundary", async () => {
    const junk = join(dir, "junk.png");
    await writeFile(junk, "not an image");
    await expect(engine.resize(junk, join(dir, "x.jpg"), { width: 10, fit: "cover", format: "jpeg", quality: 80, limits }, new AbortController().signal)).rejects.toMatchObject({
      name: "JobFailure",
      code: "INVALID_MEDIA",
    });
  });

  it("keeps LIMIT_EXCEEDED a JobFailure across the process boundary", async () => {
    await expect(
      engine.resize(photo, join(dir, "y.avif"), { width: 16384, height: 16384, fit: "fill", format: "avif", quality: 80, limits: jobLimits("free") }, new AbortController().signal),
    ).rejects.toMatchObject({ name: "JobFailure", code: "LIMIT_EXCEEDED" });
  });

  it("stops a huge encode at once when its job is canceled: the rejection is immediate and the process is gone", async () => {
    const controller = new AbortController();
    // 8000×8000 AVIF at the slowest effort: a minute of CPU and gigabytes if left alone.
    const work = engine.resize(photo, join(dir, "huge.avif"), { width: 8000, height: 8000, fit: "fill", format: "avif", quality: 90, limits }, controller.signal);
    await new Promise((r) => setTimeout(r, 1500));
    const busy = engine.pids();
    expect(busy.length).toBeGreaterThan(0);
    const started = Date.now();
    controller.abort(new Error("canceled"));
    await expect(work).rejects.toThrow("canceled");
    await new Promise((r) => setTimeout(r, 300));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(busy.filter(alive)).toEqual([]);
  }, 30_000);
});

describe("the image engine with a small image", () => {
  const engine = createImageEngine();
  let dir: string;
  let photo: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "engine-inline-"));
    photo = join(dir, "photo.png");
    await sharp({ create: { width: 64, height: 48, channels: 3, background: "#3366cc" } }).png().toFile(photo);
  });
  afterAll(async () => {
    engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("makes a thumbnail in its own process, starting no child", async () => {
    const out = await engine.resize(photo, join(dir, "thumb.webp"), { width: 32, height: 32, fit: "inside", format: "webp", quality: 75, limits }, new AbortController().signal);
    expect(out).toMatchObject({ width: 32, height: 24, format: "webp" });
    expect((await sharp(out.path).metadata()).format).toBe("webp");
    expect(engine.pids()).toEqual([]);
  });

  it("still resizes to a large output in a child process", async () => {
    const out = await engine.resize(photo, join(dir, "big.png"), { width: 640, height: 480, fit: "fill", format: "png", quality: 75, limits }, new AbortController().signal);
    expect(out).toMatchObject({ width: 640, height: 480 });
    expect(engine.pids()).toHaveLength(1);
  }, 30_000);

  it("refuses a canceled job before resizing", async () => {
    const controller = new AbortController();
    controller.abort(new Error("canceled"));
    await expect(engine.resize(photo, join(dir, "never.png"), { width: 16, fit: "cover", format: "png", quality: 75, limits }, controller.signal)).rejects.toThrow("canceled");
  });
});
