import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { Env } from "../env.ts";
import { describeDriverContract } from "./driver-contract.ts";
import { S3Driver } from "./s3-driver.ts";

// `npm test` starts an S3 server and sets S3_*; without it there is no S3 to test against. It sets
// S3_VERIFIES_SIGNATURES=1 when its server checks SigV4 (s3rver does not): see packages/devstack/src/test-servers.ts.
const env = Env.parse(process.env);
const verifiesSignatures = process.env.S3_VERIFIES_SIGNATURES === "1";
if (env.S3_ENDPOINT && env.S3_BUCKET) {
  describeDriverContract("s3", async () => {
    const driver = new S3Driver({
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      bucket: env.S3_BUCKET!,
      accessKeyId: env.S3_ACCESS_KEY_ID,
      secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    });
    return { driver, close: async () => driver.close() };
  }, { verifiesSignatures });

  // Docker: this service reaches S3 by its service name, clients by localhost and the published port.
  describe("s3 driver with a public endpoint", () => {
    const internal = new URL(env.S3_ENDPOINT!);
    // The same server under another name, so the signed URLs can be followed too.
    const publicEndpoint = `http://localhost:${internal.port}`;
    const config = { endpoint: env.S3_ENDPOINT, region: env.S3_REGION, bucket: env.S3_BUCKET!, accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY };
    const driver = new S3Driver({ ...config, publicEndpoint });
    afterAll(() => driver.close());
    const bytes = Buffer.from("bytes through the public address");

    it("signs clients' upload and download URLs for the public host, and they work there", async () => {
      const key = `${randomUUID()}/${randomUUID()}`;
      const put = await driver.presignPut(key, { contentType: "text/plain", size: bytes.length, expiresInSec: 60 });
      expect(new URL(put.url).host).toBe(`localhost:${internal.port}`);
      expect((await fetch(put.url, { method: "PUT", headers: put.headers, body: bytes })).status).toBe(200);
      await driver.commitUpload(key);

      const url = await driver.presignGet(key, { expiresInSec: 60, filename: "a.txt", contentType: "text/plain" });
      expect(new URL(url).host).toBe(`localhost:${internal.port}`);
      const res = await fetch(url);
      expect(Buffer.from(await res.arrayBuffer())).toEqual(bytes);
    });

    it("signs workers' URLs for the internal endpoint, where they run too", async () => {
      const key = `${randomUUID()}/${randomUUID()}`;
      await driver.putStream(key, Readable.from([bytes]), { maxBytes: 1000 });
      const get = await driver.presignGet(key, { expiresInSec: 60, filename: "a.txt", contentType: "text/plain", audience: "worker" });
      const put = await driver.presignPut(key, { contentType: "text/plain", expiresInSec: 60, audience: "worker" });
      expect([new URL(get).host, new URL(put.url).host]).toEqual([internal.host, internal.host]);
    });

    it("keeps its own calls on the internal endpoint when the public one is unreachable from here", async () => {
      const outside = new S3Driver({ ...config, publicEndpoint: "http://s3.example.com:9000" });
      try {
        const key = `${randomUUID()}/${randomUUID()}`;
        expect(await outside.putStream(key, Readable.from([bytes]), { maxBytes: 1000 })).toBe(bytes.length);
        expect(await outside.size(key)).toBe(bytes.length);
        await outside.check();
        expect(new URL(await outside.presignGet(key, { expiresInSec: 60, filename: "a.txt", contentType: "text/plain" })).host).toBe("s3.example.com:9000");
      } finally {
        outside.close();
      }
    });
  });
} else {
  describe("s3 driver", () => {
    it.skip("S3_ENDPOINT is not set: run with `npm test`, which starts an S3 server", () => {});
  });
}
