import { execFileSync } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probe } from "@cutroom/worker-runtime/ffmpeg";
import type { StorageDriver } from "./driver.ts";

/**
 * What every storage driver must do, as tests. Each driver's test file calls this with a
 * setup that gives a working driver whose signed URLs are reachable over HTTP.
 * `verifiesSignatures: false` is for s3rver, which accepts any SigV4 signature (it checks only
 * expiry), so tampering and signed-size tests cannot fail there; real S3 and MinIO do verify.
 */
export function describeDriverContract(
  name: string,
  setup: () => Promise<{ driver: StorageDriver; close: () => Promise<void> }>,
  server: { verifiesSignatures: boolean } = { verifiesSignatures: true },
): void {
  describe(`${name} driver`, () => {
    let driver: StorageDriver;
    let close: (() => Promise<void>) | undefined;
    beforeAll(async () => ({ driver, close } = await setup()));
    afterAll(async () => close?.());

    const newKey = () => `${randomUUID()}/${randomUUID()}`;
    const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    // Uneven chunks, so nothing lines up with a part or buffer size by luck.
    const streamOf = (bytes: Buffer, chunk = 100_003) =>
      Readable.from((function* () {
        for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
      })());
    const download = async (url: string, headers: Record<string, string> = {}) => {
      const res = await fetch(url, { headers });
      return { res, bytes: Buffer.from(await res.arrayBuffer()) };
    };

    it("streams a few MB in and gives back exactly the same bytes", async () => {
      const bytes = randomBytes(7 * 1024 * 1024 + 123);
      const key = newKey();
      expect(await driver.putStream(key, streamOf(bytes), { maxBytes: bytes.length, contentType: "video/mp4" })).toBe(bytes.length);
      expect(await driver.size(key)).toBe(bytes.length);
      const { res, bytes: back } = await download(await driver.presignGet(key, { expiresInSec: 60, filename: "clip.mp4", contentType: "video/mp4" }));
      expect(res.status).toBe(200);
      expect(sha256(back)).toBe(sha256(bytes));
    }, 30_000);

    it("takes an upload to a presigned PUT URL and serves it from a presigned GET URL with its name and type", async () => {
      const bytes = randomBytes(300_000);
      const key = newKey();
      const put = await driver.presignPut(key, { contentType: "image/png", size: bytes.length, expiresInSec: 60 });
      const up = await fetch(put.url, { method: "PUT", headers: put.headers, body: bytes });
      expect(up.status).toBe(200);
      await driver.commitUpload(key);
      const url = await driver.presignGet(key, { expiresInSec: 60, filename: "café poster.png", contentType: "image/png" });
      const { res, bytes: back } = await download(url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/png");
      expect(res.headers.get("content-disposition")).toContain("filename*=UTF-8''caf%C3%A9%20poster.png");
      expect(sha256(back)).toBe(sha256(bytes));
    });

    it("serves a byte range of a signed download", async () => {
      const bytes = randomBytes(10_000);
      const key = newKey();
      await driver.putStream(key, streamOf(bytes), { maxBytes: bytes.length });
      const url = await driver.presignGet(key, { expiresInSec: 60, filename: "a.bin", contentType: "application/octet-stream" });
      const { res, bytes: part } = await download(url, { range: "bytes=100-199" });
      expect(res.status).toBe(206);
      expect(part.equals(bytes.subarray(100, 200))).toBe(true);
    });

    it.skipIf(!server.verifiesSignatures)("refuses a presigned PUT with more bytes than were signed, and keeps none of them", async () => {
      const key = newKey();
      const put = await driver.presignPut(key, { contentType: "application/octet-stream", size: 1000, expiresInSec: 60 });
      const res = await fetch(put.url, { method: "PUT", headers: put.headers, body: randomBytes(1001) });
      expect(res.ok).toBe(false);
      expect(await driver.size(key)).toBeUndefined();
    });

    it("gives ffprobe a source it can read the object from, to measure uploads", async () => {
      const wav = execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "sine=duration=1.5", "-f", "wav", "pipe:1"]);
      const key = newKey();
      await driver.putStream(key, streamOf(wav), { maxBytes: wav.length, contentType: "audio/wav" });
      expect((await probe(await driver.localSource(key), { timeoutMs: 10_000 })).duration).toBeCloseTo(1.5, 2);
    });

    it("stores a small body held in memory whole, replacing what the key held, and serves it back", async () => {
      const key = newKey();
      await driver.putBytes(key, randomBytes(3000), { contentType: "image/webp" });
      const bytes = randomBytes(2345);
      await driver.putBytes(key, bytes, { contentType: "image/webp" });
      expect(await driver.size(key)).toBe(bytes.length);
      const { res, bytes: back } = await download(await driver.presignGet(key, { expiresInSec: 60, filename: "out.webp", contentType: "image/webp" }));
      expect(res.status).toBe(200);
      expect(back.equals(bytes)).toBe(true);
    });

    it("reads the first bytes of an object, or all of a shorter one", async () => {
      const bytes = randomBytes(5000);
      const key = newKey();
      await driver.putStream(key, streamOf(bytes), { maxBytes: 10_000 });
      expect((await driver.readHead(key, 16)).equals(bytes.subarray(0, 16))).toBe(true);
      expect((await driver.readHead(key, 8000)).equals(bytes)).toBe(true);
    });

    it("reports the size of an object, and none once it is deleted", async () => {
      const key = newKey();
      expect(await driver.size(key)).toBeUndefined();
      await driver.putStream(key, streamOf(randomBytes(4321)), { maxBytes: 10_000 });
      expect(await driver.size(key)).toBe(4321);
      await driver.delete(key);
      expect(await driver.size(key)).toBeUndefined();
      await driver.delete(key); // deleting twice is fine
    });

    it("rejects a stream that passes its byte limit with PAYLOAD_TOO_LARGE and leaves no object", async () => {
      for (const [size, max] of [
        [2000, 1999],
        [12 * 1024 * 1024, 11 * 1024 * 1024], // past several multipart parts on S3
      ] as const) {
        const key = newKey();
        await expect(driver.putStream(key, streamOf(randomBytes(size)), { maxBytes: max })).rejects.toMatchObject({ code: "PAYLOAD_TOO_LARGE", status: 413 });
        expect(await driver.size(key)).toBeUndefined();
      }
    }, 30_000);

    it.skipIf(!server.verifiesSignatures)("refuses a signed URL that was tampered with", async () => {
      const key = newKey();
      await driver.putStream(key, streamOf(randomBytes(100)), { maxBytes: 100 });
      const url = new URL(await driver.presignGet(key, { expiresInSec: 60, filename: "a.bin", contentType: "application/octet-stream" }));
      const flipLast = (s: string) => s.slice(0, -1) + (s.endsWith("a") ? "b" : "a");
      // The signature is a query parameter on S3 and the end of the path on fs.
      const signature = url.searchParams.get("X-Amz-Signature");
      if (signature) url.searchParams.set("X-Amz-Signature", flipLast(signature));
      else url.pathname = flipLast(url.pathname);
      expect((await fetch(url)).status).toBe(403);
    });

    it("refuses a signed URL once it has expired", async () => {
      const key = newKey();
      await driver.putStream(key, streamOf(randomBytes(100)), { maxBytes: 100 });
      const shortLived = await driver.presignGet(key, { expiresInSec: 1, filename: "a.bin", contentType: "application/octet-stream" });
      await sleep(2100);
      expect((await fetch(shortLived)).status).toBe(403);
    });

    it("joins multipart parts, sent out of order and again, into exactly their bytes; a part of the wrong size is refused", async () => {
      const key = newKey();
      const first = randomBytes(5 * 1024 * 1024);
      const last = randomBytes(1234);
      const id = await driver.startMultipart(key, { contentType: "application/octet-stream" });
      const lastTag = await driver.putPart(key, id, 3, streamOf(last), last.length);
      await driver.putPart(key, id, 1, streamOf(randomBytes(first.length)), first.length);
      const firstTag = await driver.putPart(key, id, 1, streamOf(first), first.length);
      await expect(driver.putPart(key, id, 2, streamOf(randomBytes(10)), 11)).rejects.toMatchObject({ code: "INVALID_INPUT" });
      await expect(driver.putPart(key, id, 2, streamOf(randomBytes(12)), 11)).rejects.toMatchObject({ code: "INVALID_INPUT" });
      await driver.completeMultipart(key, id, [
        { partNumber: 1, etag: firstTag },
        { partNumber: 3, etag: lastTag },
      ]);
      const joined = await new Response(Readable.toWeb(await driver.openStream(key)) as ReadableStream).arrayBuffer();
      expect(sha256(new Uint8Array(joined))).toBe(sha256(Buffer.concat([first, last])));
      await driver.delete(key);
    });

    it("aborts a multipart upload, also one aborted already", async () => {
      const key = newKey();
      const id = await driver.startMultipart(key, { contentType: "application/octet-stream" });
      await driver.putPart(key, id, 1, streamOf(randomBytes(100)), 100);
      await driver.abortMultipart(key, id);
      await expect(driver.abortMultipart(key, id)).resolves.toBeUndefined();
      expect(await driver.size(key)).toBeUndefined();
    });

    it("reports itself healthy", async () => {
      await expect(driver.check()).resolves.toBeUndefined();
    });
  });
}
