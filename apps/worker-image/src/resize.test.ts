import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { jobLimits, resizedSize } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resizeImage } from "./resize.ts";

// The widest tier's bounds: these tests are about resizing, not limits.
const limits = jobLimits("enterprise");

describe("resizeImage with sharp", () => {
  let dir: string;
  let photo: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "resize-"));
    // A 640×480 gradient-ish png: enough detail that encoders have real work to do.
    photo = join(dir, "photo.png");
    const { data, info } = await sharp({ create: { width: 640, height: 480, channels: 3, background: "#3366cc" } })
      .composite([{ input: { create: { width: 320, height: 240, channels: 3, background: "#ffcc00" } }, top: 60, left: 80 }])
      .raw()
      .toBuffer({ resolveWithObject: true });
    await sharp(data, { raw: info }).png().toFile(photo);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("crops to exactly the box asked for with fit cover, as a jpeg", async () => {
    const out = await resizeImage(photo, join(dir, "cover.jpg"), { width: 200, height: 200, fit: "cover", format: "jpeg", quality: 80, limits });
    const meta = await sharp(out.path).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([200, 200, "jpeg"]);
    expect(out).toMatchObject({ width: 200, height: 200, format: "jpeg" });
    expect(out.size).toBeGreaterThan(0);
  });

  it("keeps the aspect ratio inside the box with fit inside, as a webp", async () => {
    const out = await resizeImage(photo, join(dir, "inside.webp"), { width: 320, height: 320, fit: "inside", format: "webp", quality: 80, limits });
    const meta = await sharp(out.path).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([320, 240, "webp"]);
  });

  it("scales by width alone when no height is given, as a png", async () => {
    const out = await resizeImage(photo, join(dir, "width.png"), { width: 160, fit: "cover", format: "png", quality: 80, limits });
    const meta = await sharp(out.path).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([160, 120, "png"]);
  });

  it("encodes avif (an AV1 image in a HEIF container)", async () => {
    const out = await resizeImage(photo, join(dir, "small.avif"), { width: 64, height: 48, fit: "fill", format: "avif", quality: 50, limits });
    const meta = await sharp(out.path).metadata();
    expect([meta.width, meta.height, meta.format, meta.compression]).toEqual([64, 48, "heif", "av1"]);
  });

  it("gives lower quality settings smaller files", async () => {
    const high = await resizeImage(photo, join(dir, "q95.jpg"), { width: 640, fit: "cover", format: "jpeg", quality: 95, limits });
    const low = await resizeImage(photo, join(dir, "q20.jpg"), { width: 640, fit: "cover", format: "jpeg", quality: 20, limits });
    expect(low.size).toBeLessThan(high.size);
  });

  it("refuses bytes that are not an image with INVALID_MEDIA, not to be retried", async () => {
    const junk = join(dir, "junk.png");
    await writeFile(junk, "this is plainly not a png file");
    await expect(resizeImage(junk, join(dir, "never.jpg"), { width: 10, fit: "cover", format: "jpeg", quality: 80, limits })).rejects.toMatchObject({
      name: "JobFailure",
      code: "INVALID_MEDIA",
      retryable: false,
    });
  });

  it("refuses a 1×1 PNG asked to become 16384×16384 with LIMIT_EXCEEDED on the free tier, writing nothing", async () => {
    const pixel = join(dir, "pixel.png");
    await sharp({ create: { width: 1, height: 1, channels: 3, background: "#fff" } }).png().toFile(pixel);
    const output = join(dir, "huge.avif");
    await expect(
      resizeImage(pixel, output, { width: 16384, height: 16384, fit: "cover", format: "avif", quality: 80, limits: jobLimits("free") }),
    ).rejects.toMatchObject({ name: "JobFailure", code: "LIMIT_EXCEEDED", retryable: false, message: expect.stringContaining("free tier") });
    await expect(access(output)).rejects.toThrow();
  });

  it("refuses an input picture past the job's limit with LIMIT_EXCEEDED, even for a small output", async () => {
    const small = { ...jobLimits("free"), max_input_pixels: 640 * 480 - 1 };
    await expect(resizeImage(photo, join(dir, "never3.jpg"), { width: 10, fit: "cover", format: "jpeg", quality: 80, limits: small })).rejects.toMatchObject({
      code: "LIMIT_EXCEEDED",
      message: expect.stringContaining("input picture"),
    });
  });

  it("writes exactly the size the limits were checked against, for every fit and for a rotated photo", async () => {
    // Stored 60×20, shown 20×60 (EXIF orientation 6): resize works on what is shown.
    const rotated = join(dir, "rotated.jpg");
    await sharp({ create: { width: 60, height: 20, channels: 3, background: "#c33" } }).jpeg().withMetadata({ orientation: 6 }).toFile(rotated);
    const cases = [
      [photo, { width: 100, height: 100, fit: "inside" }, { width: 640, height: 480 }],
      [photo, { width: 100, height: 100, fit: "outside" }, { width: 640, height: 480 }],
      [photo, { height: 77, fit: "cover" }, { width: 640, height: 480 }],
      [photo, { width: 50, height: 70, fit: "contain" }, { width: 640, height: 480 }],
      [rotated, { width: 40, fit: "cover" }, { width: 20, height: 60 }],
    ] as const;
    for (const [input, box, src] of cases) {
      const out = await resizeImage(input, join(dir, `sized-${box.fit}.png`), { ...box, format: "png", quality: 80, limits });
      expect({ width: out.width, height: out.height }, JSON.stringify(box)).toEqual(resizedSize(src, box));
    }
  });

  it("refuses a truncated image with INVALID_MEDIA", async () => {
    const whole = await sharp(photo).jpeg().toBuffer();
    const truncated = join(dir, "truncated.jpg");
    await writeFile(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    await expect(resizeImage(truncated, join(dir, "never2.jpg"), { width: 10, fit: "cover", format: "jpeg", quality: 80, limits })).rejects.toMatchObject({
      code: "INVALID_MEDIA",
    });
  });
});
