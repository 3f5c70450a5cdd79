import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@cutroom/devstack";
import { silentLogger } from "@cutroom/testing";
import { blobRoutes, buildHttp } from "../http.ts";
import { createSigner } from "../signed-token.ts";
import { describe, expect, it } from "vitest";
import { describeDriverContract } from "./driver-contract.ts";
import { FsDriver } from "./fs-driver.ts";

/** An fs driver in a folder of its own, with this service's data plane serving its signed URLs. */
async function startDataPlane() {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "storage-"));
  const port = await freePort();
  const driver = new FsDriver({ dir, publicUrl: `http://127.0.0.1:${port}/storage`, internalUrl: `http://127.0.0.1:${port}`, signer: createSigner(randomBytes(32).toString("hex")) });
  // No database here: the PUT goes straight to the driver (the one-PUT-per-ticket gate is tested in storage.test.ts).
  const http = buildHttp(silentLogger(), [blobRoutes(driver, (key, body, maxBytes) => driver.putStream(key, body, { maxBytes }))]);
  await http.listen({ port, host: "127.0.0.1" });
  return {
    driver,
    close: async () => {
      await http.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The fs driver's signed URLs are served by this service's own data plane, so it runs here too.
describeDriverContract("fs", startDataPlane);

describe("fs driver signed URLs", () => {
  const driver = new FsDriver({ dir: tmpdir(), publicUrl: "https://api.example.com/storage", internalUrl: "http://storage-1:8001", signer: createSigner(randomBytes(32).toString("hex")) });
  const key = "0b7c7e5e-6f4e-4a57-9d0e-3c1f1a2b3c4d/5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f";

  it("sends workers straight to storage's data plane, so a job never depends on a gateway", async () => {
    const get = await driver.presignGet(key, { expiresInSec: 60, filename: "a.png", contentType: "image/png", audience: "worker" });
    const put = await driver.presignPut(key, { contentType: "image/png", expiresInSec: 60, audience: "worker" });
    expect(get).toMatch(/^http:\/\/storage-1:8001\/storage\/blob\/[^/]+$/);
    expect(put.url).toMatch(/^http:\/\/storage-1:8001\/storage\/blob\/[^/]+$/);
  });

  it("gives clients URLs on the public address", async () => {
    const get = await driver.presignGet(key, { expiresInSec: 60, filename: "a.png", contentType: "image/png" });
    const put = await driver.presignPut(key, { contentType: "image/png", size: 10, expiresInSec: 60, audience: "client" });
    expect(get).toMatch(/^https:\/\/api\.example\.com\/storage\/blob\/[^/]+$/);
    expect(put.url).toMatch(/^https:\/\/api\.example\.com\/storage\/blob\/[^/]+$/);
  });
});

describe("fs driver data plane downloads", () => {
  it("serves a small object whole and a large one streamed, each with single byte ranges, 416 past the end and 404 once gone", async () => {
    const { driver, close } = await startDataPlane();
    try {
      // Below and above the size sent in one piece (256 KiB).
      for (const size of [10, 300 * 1024]) {
        const key = `0b7c7e5e-6f4e-4a57-9d0e-3c1f1a2b3c4d/${randomUUID()}`;
        const bytes = randomBytes(size);
        const put = await driver.presignPut(key, { contentType: "application/octet-stream", expiresInSec: 60, audience: "worker" });
        expect((await fetch(put.url, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: bytes })).status).toBe(200);
        const url = await driver.presignGet(key, { expiresInSec: 60, filename: "f.bin", contentType: "application/octet-stream", audience: "worker" });

        const whole = await fetch(url);
        expect([whole.status, whole.headers.get("content-length"), Buffer.from(await whole.arrayBuffer()).equals(bytes)]).toEqual([200, String(size), true]);
        const part = await fetch(url, { headers: { range: "bytes=2-5" } });
        expect([part.status, part.headers.get("content-range"), Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(2, 6))]).toEqual([206, `bytes 2-5/${size}`, true]);
        const tail = await fetch(url, { headers: { range: "bytes=-3" } });
        expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(size - 3))).toBe(true);
        const past = await fetch(url, { headers: { range: `bytes=${size}-` } });
        expect([past.status, past.headers.get("content-range")]).toEqual([416, `bytes */${size}`]);
        expect(await past.json()).toMatchObject({ error: { code: "BAD_REQUEST", message: "range not satisfiable" } });

        await driver.delete(key);
        const gone = await fetch(url);
        expect([gone.status, ((await gone.json()) as { error: { code: string } }).error.code]).toEqual([404, "NOT_FOUND"]);
      }
    } finally {
      await close();
    }
  });
});
