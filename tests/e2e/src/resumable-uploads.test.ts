import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import * as tus from "tus-js-client";
import { describe, expect, it } from "vitest";
import { expectEnvelope, type Reply } from "./client.ts";
import { useStack } from "./stack.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const MiB = 1024 ** 2;
const chunkSize = 5 * MiB;

// npm test starts an S3 server (s3rver) and sets S3_*: the same uploads then run on the s3 driver too.
const s3Env = process.env.S3_ENDPOINT && process.env.S3_BUCKET ? Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("S3_")) as Array<[string, string]>) : undefined;
const drivers: Array<[string, Record<string, string> | undefined]> = [
  ["fs", {}],
  ["s3", s3Env ? { STORAGE_DRIVER: "s3", ...s3Env } : undefined],
];

/** A chunk as seed 004's form: chunk_index and checksum first, then the chunk part; `cutAfter` breaks the body after that many chunk bytes. */
function sendChunk(base: string, token: string, uploadId: string, index: number, bytes: Uint8Array, opts: { checksum?: string; cutAfter?: number } = {}) {
  const boundary = `----cutroom${randomBytes(8).toString("hex")}`;
  const field = (name: string, value: string) => `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const head = Buffer.from(
    field("chunk_index", String(index)) +
      (opts.checksum ? field("checksum", opts.checksum) : "") +
      `--${boundary}\r\ncontent-disposition: form-data; name="chunk"; filename="chunk-${index}"\r\ncontent-type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return new Promise<Reply>((resolve, reject) => {
    const req = request(
      `${base}/api/v1/chunked-upload/chunk/${uploadId}`,
      { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": head.length + bytes.length + tail.length } },
      async (res) => {
        const parts: Buffer[] = [];
        for await (const p of res) parts.push(p as Buffer);
        resolve({ status: res.statusCode!, headers: new Headers(), body: JSON.parse(Buffer.concat(parts).toString() || "null") });
      },
    );
    req.on("error", reject);
    req.write(head);
    if (opts.cutAfter !== undefined) {
      // The connection drops mid-body: the client sees an error, the server must keep nothing of this chunk.
      req.write(bytes.subarray(0, opts.cutAfter), () => setImmediate(() => req.destroy(new Error("cut"))));
      return;
    }
    req.write(bytes);
    req.end(tail);
  });
}

const chunkOf = (file: Buffer, i: number) => file.subarray(i * chunkSize, Math.min(file.length, (i + 1) * chunkSize));

describe.each(drivers)("resumable uploads on the %s driver", (_driver, env) => {
  if (!env) {
    it.skip("S3_ENDPOINT is not set: run with `npm test`, which starts an S3 server", () => {});
    return;
  }
  const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "gateway"], env });
  // 50 MB that is not a whole number of chunks: the last one is shorter. Random bytes begin with some
  // format's magic now and then (a CI run drew an MP3 frame header, sniffed as audio/mpeg, then refused
  // by ffprobe with 415): a text head makes them plain octets every time.
  const file = randomBytes(50_000_000);
  file.write("cutroom resumable-upload test bytes\n", 0, "latin1");
  const fileSha = sha256(file);

  it("takes 50 MB in chunks out of order, a repeat and a dropped connection, resumed from the upload's status, and serves the same bytes", async () => {
    const { token } = await ctx.api.signUp();
    const init = await ctx.api.post("/chunked-upload/init", { filename: "take-1.bin", total_size: file.length, chunk_size: chunkSize, file_type: "application/octet-stream", sha256: fileSha }, token);
    expect(init.status).toBe(201);
    expect(init.body).toMatchObject({ chunk_count: 10, upload_id: expect.any(String), expires_at: expect.any(String) });
    const id = init.body.upload_id as string;
    const send = (i: number, opts?: Parameters<typeof sendChunk>[5]) => sendChunk(ctx.stack.url, token, id, i, chunkOf(file, i), opts);

    const first = await Promise.all([7, 2, 9].map((i) => send(i)));
    expect(first.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(first[2]!.body).toMatchObject({ upload_id: id, chunk_index: 9, chunks_total: 10 });
    expect((await send(0, { checksum: sha256(chunkOf(file, 0)) })).body.chunks_received).toBe(4);
    expect((await send(2)).body).toMatchObject({ chunk_index: 2, chunks_received: 4 });
    await expect(send(4, { cutAfter: 2 * MiB })).rejects.toThrow();

    // The client "crashed": what the server has tells it what to send.
    const status = await ctx.api.get(`/chunked-upload/${id}`, token);
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ received: [0, 2, 7, 9], missing: [1, 3, 4, 5, 6, 8], chunk_count: 10, total_size: file.length, chunk_size: chunkSize, filename: "take-1.bin" });
    const rest = await Promise.all((status.body.missing as number[]).reverse().map((i) => send(i)));
    expect(rest.map((r) => r.status)).toEqual(rest.map(() => 200));

    const done = await ctx.api.post(`/chunked-upload/complete/${id}`, {}, token);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ filename: "take-1.bin", file_size: file.length, file_id: expect.any(String), file_url: expect.any(String) });
    const downloaded = Buffer.from(await (await fetch(done.body.file_url)).arrayBuffer());
    expect(sha256(downloaded)).toBe(fileSha);
    // Completing again answers the same file; the file is an ordinary ready one.
    expect((await ctx.api.post(`/chunked-upload/complete/${id}`, {}, token)).body.file_id).toBe(done.body.file_id);
    expect((await ctx.api.get(`/files/${done.body.file_id}`, token)).body.file).toMatchObject({ status: "ready", size: file.length });
  });

  it("refuses a chunk of the wrong size and one whose checksum differs, keeping neither; completes only when all are in", async () => {
    const { token } = await ctx.api.signUp();
    const small = file.subarray(0, 12 * MiB);
    const init = await ctx.api.post("/chunked-upload/init", { filename: "b.bin", total_size: small.length, chunk_size: chunkSize, file_type: "application/octet-stream" }, token);
    const id = init.body.upload_id as string;
    const short = await sendChunk(ctx.stack.url, token, id, 0, chunkOf(small, 0).subarray(1));
    expectEnvelope(short, 422, "INVALID_INPUT");
    expect(short.body.error.details).toMatchObject({ chunk_index: 0, expected_size: chunkSize });
    // The last chunk is the rest of the file, not chunk_size.
    expectEnvelope(await sendChunk(ctx.stack.url, token, id, 2, chunkOf(small, 1)), 422, "INVALID_INPUT");
    const good = chunkOf(small, 1);
    const bad = await sendChunk(ctx.stack.url, token, id, 1, good, { checksum: sha256(Buffer.from("something else")) });
    expectEnvelope(bad, 422, "CHECKSUM_MISMATCH");
    expect((await ctx.api.get(`/chunked-upload/${id}`, token)).body).toMatchObject({ received: [], chunks_received: 0 });

    // A good chunk then a corrupted resend of it: the good one stays.
    expect((await sendChunk(ctx.stack.url, token, id, 1, good, { checksum: sha256(good) })).status).toBe(200);
    expectEnvelope(await sendChunk(ctx.stack.url, token, id, 1, Buffer.alloc(good.length), { checksum: sha256(good) }), 422, "CHECKSUM_MISMATCH");
    const missing = await ctx.api.post(`/chunked-upload/complete/${id}`, {}, token);
    expectEnvelope(missing, 409, "INVALID_STATE");
    expect(missing.body.error.details.missing).toEqual([0, 2]);
    for (const i of [0, 2]) expect((await sendChunk(ctx.stack.url, token, id, i, chunkOf(small, i))).status).toBe(200);
    const done = await ctx.api.post(`/chunked-upload/complete/${id}`, { sha256: sha256(small) }, token);
    expect(done.status).toBe(200);
    expect(sha256(Buffer.from(await (await fetch(done.body.file_url)).arrayBuffer()))).toBe(sha256(small));
  });

  it("checks the tier's size at init, the real type at complete, and shows an upload to its owner only", async () => {
    const { token } = await ctx.api.signUp();
    const big = await ctx.api.post("/chunked-upload/init", { filename: "huge.mp4", total_size: 600 * 1000 ** 2, chunk_size: chunkSize, file_type: "video/mp4" }, token);
    expectEnvelope(big, 413, "PAYLOAD_TOO_LARGE");
    expect(big.body.error.details).toMatchObject({ total_size: 600 * 1000 ** 2, max_bytes: 500 * 1024 ** 2, tier: "free" });

    const init = await ctx.api.post("/chunked-upload/init", { filename: "fake.png", total_size: 1000, chunk_size: chunkSize, file_type: "image/png" }, token);
    const id = init.body.upload_id as string;
    expect(init.body.chunk_count).toBe(1);
    const other = await ctx.api.signUp();
    expectEnvelope(await ctx.api.get(`/chunked-upload/${id}`, other.token), 404, "NOT_FOUND");
    expectEnvelope(await sendChunk(ctx.stack.url, other.token, id, 0, file.subarray(0, 1000)), 404, "NOT_FOUND");
    expectEnvelope(await ctx.api.get("/chunked-upload/00000000-0000-4000-8000-000000000000", token), 404, "NOT_FOUND");
    expectEnvelope(await ctx.api.get("/chunked-upload/not-an-id", token), 404, "NOT_FOUND");

    expect((await sendChunk(ctx.stack.url, token, id, 0, file.subarray(0, 1000))).status).toBe(200);
    // As a signed upload's confirm: random bytes are no PNG.
    expectEnvelope(await ctx.api.post(`/chunked-upload/complete/${id}`, {}, token), 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("takes a tus upload from tus-js-client, paused mid-body and resumed, as a checked file with the same bytes", async () => {
    const { token } = await ctx.api.signUp();
    const endpoint = `${ctx.stack.url}/api/v1/tus`;
    let paused = false;
    let fileId: string | undefined;
    const upload = await new Promise<tus.Upload>((resolve, reject) => {
      const u: tus.Upload = new tus.Upload(file, {
        endpoint,
        headers: { authorization: `Bearer ${token}` },
        metadata: { filename: "take-2.bin", filetype: "application/octet-stream" },
        retryDelays: [100, 300, 500, 1000, 1000, 2000],
        onProgress: (sent) => {
          // Pause once past 20 MB: the PATCH is cut mid-body.
          if (!paused && sent > 20_000_000) {
            paused = true;
            void u.abort().then(() => setTimeout(() => u.start(), 50));
          }
        },
        onAfterResponse: (_req, res) => {
          fileId = res.getHeader("cutroom-file-id") ?? fileId;
        },
        onSuccess: () => resolve(u),
        onError: reject,
      });
      u.start();
    });
    expect(paused).toBe(true);
    expect(fileId).toBeDefined();
    const uploadId = upload.url!.split("/").pop()!;
    const status = await ctx.api.get(`/tus/${uploadId}`, token);
    expect(status.body).toMatchObject({ status: "completed", file_id: fileId, filename: "take-2.bin", total_size: file.length });
    const link = await ctx.api.get(`/files/${fileId}/download-url`, token);
    expect(sha256(Buffer.from(await (await fetch(link.body.url)).arrayBuffer()))).toBe(fileSha);
  });

  it("speaks tus: OPTIONS, version check, offsets, checksums (460), termination", async () => {
    const { token } = await ctx.api.signUp();
    const tusUrl = `${ctx.stack.url}/api/v1/tus`;
    const h = { authorization: `Bearer ${token}`, "tus-resumable": "1.0.0" };
    const options = await fetch(tusUrl, { method: "OPTIONS" });
    expect(options.status).toBe(204);
    expect(options.headers.get("tus-extension")).toBe("creation,termination,checksum,expiration");
    expect((await fetch(tusUrl, { method: "POST", headers: { authorization: h.authorization, "upload-length": "10" } })).status).toBe(412);
    expect((await fetch(tusUrl, { method: "POST", headers: { "tus-resumable": "1.0.0", "upload-length": "10" } })).status).toBe(401);

    const bytes = file.subarray(0, 11 * MiB);
    const created = await fetch(tusUrl, { method: "POST", headers: { ...h, "upload-length": String(bytes.length), "upload-metadata": `filename ${Buffer.from("c.bin").toString("base64")}` } });
    expect(created.status).toBe(201);
    expect(created.headers.get("upload-expires")).toBeTruthy();
    const at = new URL(created.headers.get("location")!, tusUrl).href;
    const patch = (offset: number, body: Uint8Array, checksum?: string) =>
      fetch(at, { method: "PATCH", headers: { ...h, "content-type": "application/offset+octet-stream", "upload-offset": String(offset), ...(checksum ? { "upload-checksum": checksum } : {}) }, body });
    const b64 = (b: Uint8Array) => createHash("sha256").update(b).digest("base64");

    const part1 = bytes.subarray(0, 3 * MiB);
    expect((await patch(0, part1, `sha256 ${b64(Buffer.from("x"))}`)).status).toBe(460);
    expect((await fetch(at, { method: "HEAD", headers: h })).headers.get("upload-offset")).toBe("0");
    const ok = await patch(0, part1, `sha256 ${b64(part1)}`);
    expect([ok.status, ok.headers.get("upload-offset")]).toEqual([204, String(part1.length)]);
    // A stale offset is refused before the body is read; the next PATCH must not wait behind that unread body
    // (storage's connection to the gateway is kept alive: it hung there once).
    for (let i = 0; i < 3; i++) expect((await patch(0, part1)).status).toBe(409);
    const rest = await patch(part1.length, bytes.subarray(part1.length));
    expect(rest.status).toBe(204);
    const fileId = rest.headers.get("cutroom-file-id");
    const head = await fetch(at, { method: "HEAD", headers: h });
    expect([head.headers.get("upload-offset"), head.headers.get("upload-length"), head.headers.get("cutroom-file-id")]).toEqual([String(bytes.length), String(bytes.length), fileId]);
    const link = await ctx.api.get(`/files/${fileId}/download-url`, token);
    expect(sha256(Buffer.from(await (await fetch(link.body.url)).arrayBuffer()))).toBe(sha256(bytes));

    const doomed = await fetch(tusUrl, { method: "POST", headers: { ...h, "upload-length": "100" } });
    const doomedAt = new URL(doomed.headers.get("location")!, tusUrl).href;
    expect((await fetch(doomedAt, { method: "DELETE", headers: h })).status).toBe(204);
    expect((await fetch(doomedAt, { method: "HEAD", headers: h })).status).toBe(404);
  });
});
