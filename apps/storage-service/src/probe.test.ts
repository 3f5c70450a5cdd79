import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { Caller, FileObject } from "@cutroom/contracts";
import type { RpcContext } from "@cutroom/runtime";
import { createMigratedDb, silentLogger } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIngestReceiver, createStorageHandlers, type StorageDeps } from "./app.ts";
import { FsDriver } from "./drivers/fs-driver.ts";
import { createMediaProbe, UnmeasurableMedia, type ProbeSource } from "./probe.ts";
import { createSigner } from "./signed-token.ts";

const ffmpeg = (...args: string[]) => execFileSync("ffmpeg", ["-v", "error", ...args, "pipe:1"], { maxBuffer: 64 * 1024 * 1024 });
const png = ffmpeg("-f", "lavfi", "-i", "color=c=red:s=40x20", "-frames:v", "1", "-c:v", "png", "-f", "image2pipe");
const jpeg = ffmpeg("-f", "lavfi", "-i", "color=c=red:s=60x20", "-frames:v", "1", "-f", "mjpeg");
/** An AVIF (its muxer needs a seekable file): ffprobe 5 reads one as a 0×0 picture, its header says the size. */
function makeAvif(): Buffer {
  const path = join(dir, "still.avif");
  execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "color=c=red:s=48x32", "-frames:v", "1", "-c:v", "libaom-av1", "-still-picture", "1", path]);
  return readFileSync(path);
}
const mp4 = ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "3", "-pix_fmt", "yuv420p", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4");
const wav = ffmpeg("-f", "lavfi", "-i", "sine=duration=2.5", "-f", "wav");
// Written to a pipe, as a browser's MediaRecorder does: no duration in the container.
const webm = ffmpeg("-f", "lavfi", "-i", "sine=duration=2", "-c:a", "libopus", "-f", "webm");
const silentMp4 = ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "1", "-pix_fmt", "yuv420p", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4");

const withSound = ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-f", "lavfi", "-i", "sine=duration=1", "-t", "1", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4");
const rgbaPng = ffmpeg("-f", "lavfi", "-i", "color=c=red@0.5:s=40x20,format=rgba", "-frames:v", "1", "-c:v", "png", "-f", "image2pipe");
/** A QuickTime Animation .mov with an alpha channel (its muxer needs a seekable file). */
function makeAlphaMov(): Buffer {
  const path = join(dir, "alpha.mov");
  execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "color=c=red@0.5:s=32x32:rate=10,format=argb", "-t", "1", "-c:v", "qtrle", path]);
  return readFileSync(path);
}
/** What an image's header tells: no time, no codec, no sound. */
const still = { duration_seconds: null, frame_rate: null, video_codec: null, audio_codec: null, has_audio: false };

/** A JPEG whose EXIF says "turn a quarter to show" (orientation 6): shown 20×60, stored 60×20. */
function withOrientation6(jpg: Buffer): Buffer {
  const tiff = Buffer.from([0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
  const body = Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]);
  const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, (body.length + 2) >> 8, (body.length + 2) & 0xff]), body]);
  return Buffer.concat([jpg.subarray(0, 2), app1, jpg.subarray(2)]);
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "probe-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileSource(bytes: Buffer): ProbeSource {
  const path = join(dir, randomUUID());
  writeFileSync(path, bytes);
  return {
    head: async (n) => {
      const f = await open(path, "r");
      try {
        const buf = Buffer.alloc(n);
        const { bytesRead } = await f.read(buf, 0, n, 0);
        return buf.subarray(0, bytesRead);
      } finally {
        await f.close();
      }
    },
    locate: async () => path,
  };
}

describe("the media probe", () => {
  const probe = createMediaProbe({ timeoutMs: 5000 });

  it("reads an image's size from its header, as it is shown (EXIF orientation applied), AVIF too", async () => {
    expect(await probe("image", fileSource(png))).toEqual({ ...still, width: 40, height: 20, has_alpha: false });
    expect(await probe("image", fileSource(jpeg))).toMatchObject({ width: 60, height: 20 });
    expect(await probe("image", fileSource(withOrientation6(jpeg)))).toMatchObject({ width: 20, height: 60 });
    expect(await probe("image", fileSource(makeAvif()))).toMatchObject({ width: 48, height: 32 });
  });

  it("measures a video's frame, length and frame rate, and an audio file's length, a WebM recording's too", async () => {
    const video = await probe("video", fileSource(mp4));
    expect(video).toMatchObject({ width: 64, height: 48, frame_rate: 10 });
    expect(video!.duration_seconds).toBeCloseTo(3, 1);
    expect((await probe("audio", fileSource(wav)))!.duration_seconds).toBeCloseTo(2.5, 2);
    expect(await probe("audio", fileSource(webm))).toMatchObject({ width: null, height: null, duration_seconds: expect.closeTo(2, 1) });
  });

  it("records codecs, sound and alpha: a video with and without sound, an audio file, a PNG with and without alpha, a video with alpha", async () => {
    expect(await probe("video", fileSource(withSound))).toMatchObject({ video_codec: "h264", audio_codec: "aac", has_audio: true, has_alpha: false });
    expect(await probe("video", fileSource(silentMp4))).toMatchObject({ video_codec: "h264", audio_codec: null, has_audio: false, has_alpha: false });
    expect(await probe("audio", fileSource(wav))).toMatchObject({ video_codec: null, audio_codec: "pcm_s16le", has_audio: true });
    expect(await probe("image", fileSource(rgbaPng))).toMatchObject({ has_alpha: true, has_audio: false });
    expect(await probe("image", fileSource(png))).toMatchObject({ has_alpha: false });
    expect(await probe("video", fileSource(makeAlphaMov()))).toMatchObject({ video_codec: "qtrle", has_alpha: true, has_audio: false });
  });

  it("leaves files that are not media unmeasured", async () => {
    expect(await probe("other", fileSource(Buffer.from("TITLE x\nLUT_3D_SIZE 2\n")))).toBeUndefined();
  });

  it("finds unmeasurable what does not hold the media its kind says", async () => {
    await expect(probe("video", fileSource(png))).rejects.toBeInstanceOf(UnmeasurableMedia);
    await expect(probe("audio", fileSource(silentMp4))).rejects.toThrow("it has no audio stream");
    await expect(probe("video", fileSource(Buffer.concat([mp4.subarray(0, 32), randomBytes(4096)])))).rejects.toBeInstanceOf(UnmeasurableMedia);
    await expect(probe("image", fileSource(Buffer.from("\x89PNG\r\n\x1a\n not really")))).rejects.toBeInstanceOf(UnmeasurableMedia);
  });

  it("gives up on a source that does not answer in time", async () => {
    const server = createServer(() => {});
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/clip.mp4`;
      const quick = createMediaProbe({ timeoutMs: 300 });
      await expect(quick("video", { head: async () => Buffer.alloc(0), locate: async () => url })).rejects.toThrow("it could not be measured in time");
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe("files measured as they become ready (fs driver, real Postgres)", () => {
  let db: Awaited<ReturnType<typeof createMigratedDb>>;
  let deps: StorageDeps;
  const caller: Caller = { user_id: randomUUID(), role: "user", tier: "free" };
  const ctx = { requestId: "test", caller, log: silentLogger() } as unknown as RpcContext;

  beforeAll(async () => {
    db = await createMigratedDb("probe");
    const signer = createSigner(randomBytes(32).toString("hex"));
    deps = { db: db.db, driver: new FsDriver({ dir: join(dir, "objects"), publicUrl: "http://127.0.0.1:1/storage", internalUrl: "http://127.0.0.1:1", signer }), signer, internalUrl: "http://127.0.0.1:1" };
  });
  afterAll(async () => db?.close());

  /** A multipart upload as the gateway streams it to the data plane. */
  async function ingest(bytes: Buffer, contentType: string): Promise<FileObject> {
    const { ingest_url } = await createStorageHandlers(deps).createIngest({ filename: "f", content_type: contentType, max_bytes: 10_000_000 }, ctx);
    return createIngestReceiver(deps)(ingest_url.split("/").pop()!, Readable.from([bytes]), bytes.length);
  }

  it("records an upload's media facts and shows them on the file", async () => {
    const video = await ingest(mp4, "video/mp4");
    expect(video).toMatchObject({ status: "ready", kind: "video", media: { width: 64, height: 48, frame_rate: 10, duration_seconds: expect.closeTo(3, 1) } });
    expect(await createStorageHandlers(deps).getFile({ file_id: video.id }, ctx)).toEqual(video);
    expect((await ingest(png, "application/octet-stream")).media).toEqual({ ...still, width: 40, height: 20, has_alpha: false });
    expect((await ingest(Buffer.from("TITLE x\nLUT_3D_SIZE 2\n"), "text/plain")).media).toBeUndefined();
  });

  it("refuses with 415 a video that sniffs right but ffprobe cannot read, and keeps none of it", async () => {
    const fake = Buffer.concat([mp4.subarray(0, 32), randomBytes(4096)]);
    await expect(ingest(fake, "video/mp4")).rejects.toMatchObject({ code: "UNSUPPORTED_MEDIA_TYPE", status: 415, message: expect.stringContaining("not a video we can read") });
    const files = await createStorageHandlers(deps).listFiles({ limit: 100, offset: 0 }, ctx);
    expect(files.data.every((f) => f.status === "ready")).toBe(true);
  });

  it("measures a job's output as it is confirmed", async () => {
    const handlers = createStorageHandlers(deps);
    const ticket = await handlers.createOutput({ owner_id: caller.user_id, job_id: randomUUID(), filename: "graded.mp4", content_type: "video/mp4" }, ctx);
    await deps.driver.putStream(`${caller.user_id}/${ticket.file_id}`, Readable.from([mp4]), { maxBytes: 10_000_000 });
    const out = await handlers.confirmOutput({ owner_id: caller.user_id, file_id: ticket.file_id }, ctx);
    expect(out).toMatchObject({ status: "ready", folder: "output", media: { width: 64, height: 48 } });
  });

  it("shows the facts as metadata too, codecs included, and an output joins the project its job names", async () => {
    const handlers = createStorageHandlers(deps);
    const video = await ingest(withSound, "video/mp4");
    expect(video.metadata).toEqual({
      duration: video.media!.duration_seconds,
      width: video.media!.width,
      height: video.media!.height,
      fps: video.media!.frame_rate,
      video_codec: "h264",
      audio_codec: "aac",
      has_audio: true,
      has_alpha: false,
    });
    const project = randomUUID();
    const ticket = await handlers.createOutput({ owner_id: caller.user_id, job_id: randomUUID(), filename: "out.mp4", content_type: "video/mp4", project_id: project }, ctx);
    await deps.driver.putStream(`${caller.user_id}/${ticket.file_id}`, Readable.from([withSound]), { maxBytes: 10_000_000 });
    const out = await handlers.confirmOutput({ owner_id: caller.user_id, file_id: ticket.file_id }, ctx);
    expect(out).toMatchObject({ project_id: project, media: { has_audio: true } });
    expect((await handlers.listFiles({ limit: 100, offset: 0, project_id: project }, ctx)).data.map((f) => f.id)).toEqual([out.id]);
  });
});
