import { execFileSync } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { Caller, ErrorEnvelope, FileObject, RpcMethod, RpcReq, UploadTicket } from "@cutroom/contracts";
import { freePort } from "@cutroom/devstack";
import { createRpcClient, serveRpc, type RpcClient } from "@cutroom/runtime";
import { createMigratedDb, silentLogger, startTestNats } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIngestReceiver, createOutputReceiver, createSignedPutReceiver, createStorageHandlers, outputFileId, type StorageDeps } from "./app.ts";
import type { StorageDriver } from "./drivers/driver.ts";
import { FsDriver } from "./drivers/fs-driver.ts";
import { S3Driver } from "./drivers/s3-driver.ts";
import { Env } from "./env.ts";
import { blobRoutes, buildHttp, ingestRoutes, outputRoutes } from "./http.ts";
import { createSigner } from "./signed-token.ts";

const ffmpeg = (...args: string[]) => execFileSync("ffmpeg", ["-v", "error", ...args, "pipe:1"], { maxBuffer: 64 * 1024 * 1024 });
const png = ffmpeg("-f", "lavfi", "-i", "color=c=red:s=32x32", "-frames:v", "1", "-c:v", "png", "-f", "image2pipe");
const mp4 = ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-t", "1", "-pix_fmt", "yuv420p", "-movflags", "frag_keyframe+empty_moov", "-f", "mp4");
const lut = Buffer.from("TITLE \"warm\"\nLUT_3D_SIZE 2\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const newUser = (role: Caller["role"] = "user"): Caller => ({ user_id: randomUUID(), role, tier: "free" });

/** storage-service as it runs: handlers over NATS, the data plane listening, a real driver and Postgres. */
async function startStorage(makeDriver: (ctx: { port: number; signer: ReturnType<typeof createSigner> }) => StorageDriver) {
  const db = await createMigratedDb("storage");
  const nats = await startTestNats();
  const port = await freePort();
  const signer = createSigner(randomBytes(32).toString("hex"));
  const driver = makeDriver({ port, signer });
  const deps: StorageDeps = { db: db.db, driver, signer, internalUrl: `http://127.0.0.1:${port}` };
  const http = buildHttp(silentLogger(), [ingestRoutes(createIngestReceiver(deps)), ...(driver instanceof FsDriver ? [blobRoutes(driver, createSignedPutReceiver(deps)), outputRoutes(createOutputReceiver(deps))] : [])]);
  await http.listen({ port, host: "127.0.0.1" });
  serveRpc(await nats.connect(), "storage", createStorageHandlers(deps), silentLogger());
  const rpc = createRpcClient(await nats.connect(), { timeoutMs: 5000 });
  return {
    db,
    driver,
    rpc,
    stop: async () => {
      await http.close();
      await nats.stop();
      await db.close();
    },
  };
}

/** Calls storage as `caller` (null: a system call, as workers make). */
const as =
  (rpc: RpcClient, caller: Caller | null) =>
  <M extends RpcMethod<"storage">>(method: M, body: RpcReq<"storage", M>) =>
    rpc.call("storage", method, body, { caller });

const put = (ticket: UploadTicket, body: Buffer) => fetch(ticket.upload_url, { method: "PUT", headers: ticket.headers, body });

/** A PUT whose body is streamed in chunks (no content-length), as the gateway streams a multipart upload. */
function streamPut(url: string, chunks: AsyncIterable<Buffer>, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "PUT", headers: { "content-type": "application/octet-stream", ...headers } }, async (res) => {
      const parts: Buffer[] = [];
      for await (const part of res) parts.push(part as Buffer);
      const text = Buffer.concat(parts).toString();
      resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined });
    });
    req.on("error", reject);
    // The server may answer (413) before the body is through; the answer is what counts.
    pipeline(Readable.from(chunks), req).catch(() => {});
  });
}

async function* chunksOf(bytes: Buffer, size = 1024 * 1024) {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

describe("storage-service with the fs driver", () => {
  let s: Awaited<ReturnType<typeof startStorage>>;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "storage-"));
    s = await startStorage(({ port, signer }) => new FsDriver({ dir, publicUrl: `http://127.0.0.1:${port}/storage`, internalUrl: `http://127.0.0.1:${port}`, signer }));
  });
  afterAll(async () => {
    await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The fs driver's temp files: uploads still arriving. */
  const inFlight = () => {
    const tmp = join(dir, ".tmp");
    return existsSync(tmp) ? readdirSync(tmp).map((f) => join(tmp, f)) : [];
  };

  /** A PUT of `bytes` that its client drops after the first MiB has reached storage; resolves once storage let go of it. */
  async function abandonPut(url: string, headers: Record<string, string>, bytes: Buffer) {
    const req = request(url, { method: "PUT", headers: { ...headers, "content-length": String(bytes.length) } });
    req.on("error", () => {});
    req.write(bytes.subarray(0, 1024 * 1024));
    while (inFlight().length === 0) await sleep(10);
    req.destroy();
    const deadline = Date.now() + 5000;
    while (inFlight().length > 0 && Date.now() < deadline) await sleep(20);
    expect(inFlight()).toEqual([]);
  }

  /** createUpload → PUT → confirmUpload, as a client does it. */
  const upload = async (caller: Caller, bytes: Buffer, contentType: string, extra: Record<string, unknown> = {}) => {
    const call = as(s.rpc, caller);
    const ticket: UploadTicket = await call("createUpload", { filename: "f.bin", content_type: contentType, size: bytes.length, max_bytes: 10_000_000, ...extra });
    expect((await put(ticket, bytes)).status).toBe(200);
    return (await call("confirmUpload", { file_id: ticket.file_id })) as FileObject;
  };

  it("uploads through a signed URL, confirms it, and gives the same bytes back", async () => {
    const call = as(s.rpc, newUser());
    const ticket: UploadTicket = await call("createUpload", { filename: "red dot.png", content_type: "image/png", size: png.length, max_bytes: 1_000_000 });
    expect(ticket).toMatchObject({ method: "PUT", headers: { "content-type": "image/png" } });
    expect(new Date(ticket.expires_at).getTime()).toBeGreaterThan(Date.now() + 14 * 60_000);
    expect(await call("getFile", { file_id: ticket.file_id })).toMatchObject({ status: "pending", folder: "input" });

    expect((await put(ticket, png)).status).toBe(200);
    const file: FileObject = await call("confirmUpload", { file_id: ticket.file_id });
    expect(file).toMatchObject({ id: ticket.file_id, filename: "red dot.png", kind: "image", size: png.length, status: "ready", folder: "input" });
    // Confirming twice changes nothing.
    expect(await call("confirmUpload", { file_id: ticket.file_id })).toEqual(file);

    const { url } = await call("downloadUrl", { file_id: file.id });
    const res = await fetch(url);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("content-disposition")).toContain('filename="red dot.png"');
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(png));
  });

  it("refuses to start an upload larger than the caller's limit with 413", async () => {
    const call = as(s.rpc, newUser());
    await expect(call("createUpload", { filename: "big.mp4", content_type: "video/mp4", size: 2001, max_bytes: 2000 })).rejects.toMatchObject({
      code: "PAYLOAD_TOO_LARGE",
      status: 413,
      details: { size: 2001, max_bytes: 2000 },
    });
  });

  it("answers 413 in the error envelope when more bytes are sent than were declared, and keeps none", async () => {
    const call = as(s.rpc, newUser());
    const ticket: UploadTicket = await call("createUpload", { filename: "a.bin", content_type: "application/octet-stream", size: 1000, max_bytes: 1_000_000 });

    const res = await put(ticket, randomBytes(1001));
    expect(res.status).toBe(413);
    const { error } = (await res.json()) as ErrorEnvelope;
    expect(error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", details: { max_bytes: 1000 } });
    expect(error.request_id).toEqual(expect.any(String));

    // Streamed without a length, it is cut off once it passes the signed size.
    const streamed = await streamPut(ticket.upload_url, chunksOf(randomBytes(3 * 1024 * 1024), 64 * 1024), ticket.headers);
    expect(streamed).toMatchObject({ status: 413, body: { error: { code: "PAYLOAD_TOO_LARGE" } } });

    await expect(call("confirmUpload", { file_id: ticket.file_id })).rejects.toMatchObject({ code: "INVALID_STATE", message: "nothing uploaded yet" });
  });

  it("keeps nothing of an upload the client abandons halfway, and the ticket still works", async () => {
    const call = as(s.rpc, newUser());
    const bytes = randomBytes(2 * 1024 * 1024);
    const ticket = await call("createUpload", { filename: "a.bin", content_type: "application/octet-stream", size: bytes.length, max_bytes: 10_000_000 });
    await abandonPut(ticket.upload_url, ticket.headers, bytes);
    await expect(call("confirmUpload", { file_id: ticket.file_id })).rejects.toMatchObject({ code: "INVALID_STATE" });

    expect((await put(ticket, bytes)).status).toBe(200);
    expect(await call("confirmUpload", { file_id: ticket.file_id })).toMatchObject({ status: "ready", size: bytes.length });
  });

  it("takes one PUT per signed upload URL and none after confirm, so a confirmed file keeps its bytes", async () => {
    const caller = newUser();
    const call = as(s.rpc, caller);
    const ticket: UploadTicket = await call("createUpload", { filename: "poster.png", content_type: "image/png", size: png.length, max_bytes: 1_000_000 });
    expect((await put(ticket, png)).status).toBe(200);
    const twice = await put(ticket, png);
    expect(twice.status).toBe(409);
    expect(((await twice.json()) as ErrorEnvelope).error).toMatchObject({ code: "INVALID_STATE" });
    expect(await call("confirmUpload", { file_id: ticket.file_id })).toMatchObject({ status: "ready", content_type: "image/png" });

    // The same URL after confirm, with a playlist of the PNG's size: refused, the PNG stays.
    const playlist = Buffer.from("#EXTM3U\n#EXT-X-VERSION:3\n".padEnd(png.length, "#"));
    const after = await put(ticket, playlist);
    expect(after.status).toBe(409);
    const { url } = await call("downloadUrl", { file_id: ticket.file_id });
    expect(sha256(Buffer.from(await (await fetch(url)).arrayBuffer()))).toBe(sha256(png));
    expect(await call("getFile", { file_id: ticket.file_id })).toMatchObject({ status: "ready", size: png.length });
  });

  it("rejects an upload with fewer bytes than declared", async () => {
    const call = as(s.rpc, newUser());
    const ticket: UploadTicket = await call("createUpload", { filename: "a.bin", content_type: "application/octet-stream", size: 1000, max_bytes: 1_000_000 });
    expect((await put(ticket, randomBytes(999))).status).toBe(200);
    await expect(call("confirmUpload", { file_id: ticket.file_id })).rejects.toMatchObject({ code: "INVALID_INPUT", details: { size: 999, declared_size: 1000 } });
    expect(await call("getFile", { file_id: ticket.file_id })).toMatchObject({ status: "rejected" });
  });

  it("rejects a 'PNG' that is really text or a video with 415, and deletes it", async () => {
    const caller = newUser();
    const call = as(s.rpc, caller);
    for (const [bytes, detected] of [
      [Buffer.from("hello, I am not a picture\n".repeat(10)), null],
      [mp4, "video/mp4"],
    ] as const) {
      const ticket: UploadTicket = await call("createUpload", { filename: "pic.png", content_type: "image/png", size: bytes.length, max_bytes: 1_000_000 });
      expect((await put(ticket, bytes)).status).toBe(200);
      await expect(call("confirmUpload", { file_id: ticket.file_id })).rejects.toMatchObject({
        code: "UNSUPPORTED_MEDIA_TYPE",
        status: 415,
        details: { declared: "image/png", detected },
      });
      expect(await call("getFile", { file_id: ticket.file_id })).toMatchObject({ status: "rejected" });
      expect(await s.driver.size(`${caller.user_id}/${ticket.file_id}`)).toBeUndefined();
      await expect(call("downloadUrl", { file_id: ticket.file_id })).rejects.toMatchObject({ code: "INVALID_STATE" });
      await expect(call("confirmUpload", { file_id: ticket.file_id })).rejects.toMatchObject({ code: "INVALID_STATE" });
    }
  });

  it("accepts a video in another container than declared, a LUT as text/plain and anything as octet-stream", async () => {
    const caller = newUser();
    expect(await upload(caller, mp4, "video/quicktime")).toMatchObject({ status: "ready", kind: "video" });
    expect(await upload(caller, lut, "text/plain")).toMatchObject({ status: "ready", kind: "other" });
    expect(await upload(caller, randomBytes(2048), "application/octet-stream")).toMatchObject({ status: "ready", kind: "other", content_type: "application/octet-stream" });
    await expect(upload(caller, png, "text/plain")).rejects.toMatchObject({ code: "UNSUPPORTED_MEDIA_TYPE" });
  });

  it("keeps the type the bytes show when only a generic binary type was declared, for a signed upload and an ingest", async () => {
    const caller = newUser();
    const call = as(s.rpc, caller);
    expect(await upload(caller, png, "application/octet-stream")).toMatchObject({ status: "ready", kind: "image", content_type: "image/png" });
    const signed = await upload(caller, mp4, "binary/octet-stream");
    expect(signed).toMatchObject({ status: "ready", kind: "video", content_type: "video/mp4" });
    const { ingest_url, file_id } = await call("createIngest", { filename: "clip.mp4", content_type: "application/octet-stream", max_bytes: 10_000_000 });
    expect(await streamPut(ingest_url, chunksOf(mp4))).toMatchObject({ status: 201, body: { kind: "video", content_type: "video/mp4" } });
    const { url } = await call("downloadUrl", { file_id });
    expect((await fetch(url)).headers.get("content-type")).toBe("video/mp4");
    expect((await call("listFiles", { kind: "video", limit: 10, offset: 0 })).data.map((f: FileObject) => f.id)).toEqual([file_id, signed.id]);
  });

  it("answers browsers' CORS preflights on signed URLs for the configured origins only", async () => {
    const origin = "https://app.example.com";
    const http = buildHttp(silentLogger(), [blobRoutes(s.driver as FsDriver, async () => 0)], { corsOrigins: [origin] });
    try {
      const preflight = (from: string) =>
        http.inject({ method: "OPTIONS", url: "/storage/blob/any-token", headers: { origin: from, "access-control-request-method": "PUT", "access-control-request-headers": "content-type" } });
      const allowed = await preflight(origin);
      expect(allowed.statusCode).toBe(204);
      expect(allowed.headers["access-control-allow-origin"]).toBe(origin);
      expect(allowed.headers["access-control-allow-methods"]).toMatch(/PUT/);
      expect((await preflight("https://evil.example.net")).headers["access-control-allow-origin"]).toBeUndefined();
      const get = await http.inject({ method: "GET", url: "/storage/blob/forged", headers: { origin } });
      expect(get.statusCode).toBe(403);
      expect(get.headers["access-control-allow-origin"]).toBe(origin);
    } finally {
      await http.close();
    }
  });

  it("treats another user's file as not found, never as forbidden", async () => {
    const owner = newUser();
    const file = await upload(owner, png, "image/png");
    const other = as(s.rpc, newUser());
    for (const method of ["getFile", "downloadUrl", "deleteFile", "confirmUpload"] as const) {
      await expect(other(method, { file_id: file.id })).rejects.toMatchObject({ code: "NOT_FOUND", status: 404 });
    }
    expect((await other("listFiles", { limit: 20, offset: 0 })).total).toBe(0);
    expect(await as(s.rpc, owner)("getFile", { file_id: file.id })).toMatchObject({ status: "ready" });
  });

  it("lists only ready files, newest first, filtered by folder, kind and project, in pages", async () => {
    const caller = newUser();
    const call = as(s.rpc, caller);
    const project = randomUUID();
    const inputs = [];
    for (let i = 0; i < 3; i++) inputs.push(await upload(caller, png, "image/png", i === 0 ? { project_id: project } : {}));
    await call("createUpload", { filename: "never.png", content_type: "image/png", size: 10, max_bytes: 100 }); // stays pending
    const job = randomUUID();
    const system = as(s.rpc, null);
    for (const name of ["out-1.mp4", "out-2.mp4"]) {
      const ticket: UploadTicket = await system("createOutput", { owner_id: caller.user_id, job_id: job, filename: name, content_type: "video/mp4" });
      expect((await put(ticket, mp4)).status).toBe(200);
      await system("confirmOutput", { owner_id: caller.user_id, file_id: ticket.file_id });
    }

    const first = await call("listFiles", { folder: "input", limit: 2, offset: 0 });
    expect(first).toMatchObject({ total: 3, limit: 2, offset: 0, has_more: true });
    expect(first.data.map((f: FileObject) => f.id)).toEqual([inputs[2]!.id, inputs[1]!.id]);
    const second = await call("listFiles", { folder: "input", limit: 2, offset: 2 });
    expect(second).toMatchObject({ total: 3, has_more: false });
    expect(second.data.map((f: FileObject) => f.id)).toEqual([inputs[0]!.id]);

    const outputs = await call("listFiles", { folder: "output", limit: 20, offset: 0 });
    expect(outputs.data.map((f: FileObject) => f.filename)).toEqual(["out-2.mp4", "out-1.mp4"]);
    expect(outputs.data.every((f: FileObject) => f.job_id === job && f.kind === "video")).toBe(true);
    expect((await call("listFiles", { kind: "video", limit: 20, offset: 0 })).total).toBe(2);
    expect((await call("listFiles", { kind: "image", limit: 20, offset: 0 })).total).toBe(3);
    expect((await call("listFiles", { project_id: project, limit: 20, offset: 0 })).data.map((f: FileObject) => f.id)).toEqual([inputs[0]!.id]);
  });

  it("deletes a file's record and its bytes", async () => {
    const caller = newUser();
    const call = as(s.rpc, caller);
    const file = await upload(caller, png, "image/png");
    const { url } = await call("downloadUrl", { file_id: file.id });
    expect(await call("deleteFile", { file_id: file.id })).toEqual({ deleted: true });
    await expect(call("getFile", { file_id: file.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect((await fetch(url)).status).toBe(404);
  });

  it("gives file totals to admins only", async () => {
    await upload(newUser(), png, "image/png");
    const stats = await as(s.rpc, newUser("admin"))("stats", {});
    expect(stats.total_files).toBeGreaterThan(0);
    expect(stats.total_bytes).toBeGreaterThanOrEqual(png.length);
    await expect(as(s.rpc, newUser())("stats", {})).rejects.toMatchObject({ code: "FORBIDDEN" });
  });

  it("streams a 20 MB ingest to disk while it is still arriving, then confirms it", async () => {
    const call = as(s.rpc, newUser());
    const { file_id, ingest_url } = await call("createIngest", { filename: "big.bin", content_type: "application/octet-stream", max_bytes: 64 * 1024 * 1024 });
    const bytes = randomBytes(20 * 1024 * 1024);
    // Half the body goes out, then the client waits until most of it is on the server's disk.
    // A server that buffered the whole body first would never get there, and this test would fail.
    const onDisk = () => inFlight().reduce((sum, f) => sum + statSync(f).size, 0);
    async function* body() {
      yield* chunksOf(bytes.subarray(0, 10 * 1024 * 1024));
      const deadline = Date.now() + 10_000;
      while (onDisk() < 6 * 1024 * 1024) {
        if (Date.now() > deadline) throw new Error(`only ${onDisk()} bytes reached the disk while the upload was in flight`);
        await sleep(20);
      }
      yield* chunksOf(bytes.subarray(10 * 1024 * 1024));
    }
    const res = await streamPut(ingest_url, body());
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ id: file_id, size: bytes.length, status: "ready", filename: "big.bin" });
    const { url } = await call("downloadUrl", { file_id });
    expect(sha256(Buffer.from(await (await fetch(url)).arrayBuffer()))).toBe(sha256(bytes));
    expect((await streamPut(ingest_url, chunksOf(png))).status).toBe(409); // an ingest URL works once
   }, 30_000);

  it("answers an ingest past the size limit with 413 and one of the wrong type with 415, keeping neither", async () => {
    const caller = newUser();
    const call = as(s.rpc, caller);
    const big = await call("createIngest", { filename: "big.bin", content_type: "application/octet-stream", max_bytes: 1024 * 1024 });
    const tooBig = await streamPut(big.ingest_url, chunksOf(randomBytes(3 * 1024 * 1024), 64 * 1024));
    expect(tooBig).toMatchObject({ status: 413, body: { error: { code: "PAYLOAD_TOO_LARGE", details: { max_bytes: 1024 * 1024 } } } });
    expect(await call("getFile", { file_id: big.file_id })).toMatchObject({ status: "rejected" });

    const fake = await call("createIngest", { filename: "x.png", content_type: "image/png", max_bytes: 1024 * 1024 });
    const wrong = await streamPut(fake.ingest_url, chunksOf(Buffer.from("plain text, not a PNG")));
    expect(wrong).toMatchObject({ status: 415, body: { error: { code: "UNSUPPORTED_MEDIA_TYPE", details: { declared: "image/png", detected: null } } } });
    for (const id of [big.file_id, fake.file_id]) expect(await s.driver.size(`${caller.user_id}/${id}`)).toBeUndefined();
    const forged = big.ingest_url.slice(0, -1) + (big.ingest_url.endsWith("a") ? "b" : "a");
    expect((await streamPut(forged, chunksOf(png))).status).toBe(403);
  });

  it("takes only one of two PUTs sent to the same ingest URL at once", async () => {
    const call = as(s.rpc, newUser());
    const { file_id, ingest_url } = await call("createIngest", { filename: "a.bin", content_type: "application/octet-stream", max_bytes: 1024 * 1024 });
    let finish!: () => void;
    const held = new Promise<void>((resolve) => (finish = resolve));
    async function* slow() {
      yield png;
      await held;
      yield png;
    }
    const first = streamPut(ingest_url, slow());
    const deadline = Date.now() + 5000;
    while (inFlight().length === 0 && Date.now() < deadline) await sleep(10);
    const second = await streamPut(ingest_url, chunksOf(mp4));
    finish();
    expect(second.status).toBe(409);
    expect(await first).toMatchObject({ status: 201, body: { id: file_id, size: 2 * png.length } });
  });

  it("refuses an ingest whose client-given name has a slash or is too long, and stores its content type lower-cased", async () => {
    const call = as(s.rpc, newUser());
    for (const filename of ["../etc/passwd", "x".repeat(300)]) {
      await expect(call("createIngest", { filename, content_type: "image/png", max_bytes: 1024 })).rejects.toMatchObject({ code: "INVALID_INPUT" });
    }
    const { file_id } = await call("createIngest", { filename: "clip.MP4", content_type: "Video/MP4", max_bytes: 1024 });
    expect(await call("getFile", { file_id })).toMatchObject({ content_type: "video/mp4", kind: "video" });
  });

  it("gives workers a signed input URL only for a ready file of the job's owner", async () => {
    const owner = newUser();
    const file = await upload(owner, mp4, "video/mp4");
    const system = as(s.rpc, null);
    const input = await system("inputUrl", { owner_id: owner.user_id, file_id: file.id });
    expect(input).toMatchObject({ filename: "f.bin", content_type: "video/mp4", size: mp4.length });
    // What storage measured at upload comes with it (ADR 058): the worker need not probe the file again.
    expect(input.media).toMatchObject({ width: 64, height: 64, duration_seconds: expect.closeTo(1, 1), has_audio: false });
    expect(input.media).toEqual((await as(s.rpc, owner)("getFile", { file_id: file.id })).media);
    expect(sha256(Buffer.from(await (await fetch(input.url)).arrayBuffer()))).toBe(sha256(mp4));
    await expect(system("inputUrl", { owner_id: randomUUID(), file_id: file.id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    const pending: UploadTicket = await as(s.rpc, owner)("createUpload", { filename: "p.png", content_type: "image/png", size: 10, max_bytes: 100 });
    await expect(system("inputUrl", { owner_id: owner.user_id, file_id: pending.file_id })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("writes a re-run job's output to the same file instead of a second one", async () => {
    const owner = newUser();
    const system = as(s.rpc, null);
    const job = randomUUID();
    const output = { owner_id: owner.user_id, job_id: job, filename: "graded.mp4", content_type: "video/mp4" };
    const first: UploadTicket = await system("createOutput", output);
    expect(first.file_id).toBe(outputFileId(job, "graded.mp4"));
    expect((await system("createOutput", { ...output, filename: "other.mp4" })).file_id).not.toBe(first.file_id);
    await expect(system("confirmOutput", { owner_id: owner.user_id, file_id: first.file_id })).rejects.toMatchObject({ code: "INVALID_STATE" });
    await put(first, mp4.subarray(0, 1000));
    expect(await system("confirmOutput", { owner_id: owner.user_id, file_id: first.file_id })).toMatchObject({ status: "ready", size: 1000, folder: "output", job_id: job });

    // The re-run: same id, back to pending until its own bytes are confirmed.
    const again: UploadTicket = await system("createOutput", output);
    expect(again.file_id).toBe(first.file_id);
    await put(again, mp4);
    expect(await system("confirmOutput", { owner_id: owner.user_id, file_id: again.file_id })).toMatchObject({ status: "ready", size: mp4.length });
    const outputs = await as(s.rpc, owner)("listFiles", { folder: "output", limit: 20, offset: 0 });
    expect(outputs.data.filter((f: FileObject) => f.filename === "graded.mp4")).toHaveLength(1);
    await expect(system("confirmOutput", { owner_id: randomUUID(), file_id: first.file_id })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("forgets a re-run output's measurements when its new bytes cannot be measured, rather than showing the last run's", async () => {
    const owner = newUser();
    const system = as(s.rpc, null);
    const output = { owner_id: owner.user_id, job_id: randomUUID(), filename: "graded.mp4", content_type: "video/mp4" };
    const first: UploadTicket = await system("createOutput", output);
    await put(first, mp4);
    expect(await system("confirmOutput", { owner_id: owner.user_id, file_id: first.file_id })).toMatchObject({ media: { width: 64, height: 64 } });

    const again: UploadTicket = await system("createOutput", output);
    const garbled = Buffer.from("not a video: the re-run's encoder wrote nothing ffprobe reads");
    await put(again, garbled);
    const rerun: FileObject = await system("confirmOutput", { owner_id: owner.user_id, file_id: again.file_id });
    expect(rerun).toMatchObject({ status: "ready", size: garbled.length });
    expect(rerun.media).toBeUndefined();
  });

  it("signs a claimed job's ready inputs and an output URL whose PUT stores and records the output, once per name", async () => {
    const owner = newUser();
    const system = as(s.rpc, null);
    const file = await upload(owner, mp4, "video/mp4");
    const pending: UploadTicket = await as(s.rpc, owner)("createUpload", { filename: "p.png", content_type: "image/png", size: 10, max_bytes: 100 });
    const theirs = await upload(newUser(), png, "image/png");
    const job = randomUUID();
    const project = randomUUID();
    const access = await system("jobAccess", { owner_id: owner.user_id, job_id: job, project_id: project, file_ids: [file.id, pending.file_id, theirs.id] });
    // Only the owner's ready file: the worker asks inputUrl for the others, which says why.
    expect(Object.keys(access.inputs)).toEqual([file.id]);
    expect(access.inputs[file.id]).toMatchObject({ filename: "f.bin", content_type: "video/mp4", size: mp4.length, media: { width: 64, height: 64, has_audio: false } });
    expect(sha256(Buffer.from(await (await fetch(access.inputs[file.id]!.url)).arrayBuffer()))).toBe(sha256(mp4));

    const putOutput = (name: string, body: Buffer, type = "image/png") => fetch(`${access.output_url}?filename=${encodeURIComponent(name)}`, { method: "PUT", headers: { "content-type": type }, body });
    const res = await putOutput("thumb é.png", png);
    expect(res.status).toBe(200);
    const stored = (await res.json()) as FileObject;
    expect(stored).toMatchObject({ id: outputFileId(job, "thumb é.png"), filename: "thumb é.png", status: "ready", folder: "output", size: png.length, job_id: job, project_id: project, media: { width: 32, height: 32 } });
    // A re-run's PUT lands on the same row, with its own bytes.
    expect(await (await putOutput("thumb é.png", png.subarray(0, 100))).json()).toMatchObject({ id: stored.id, status: "ready", size: 100 });
    const outputs = await as(s.rpc, owner)("listFiles", { folder: "output", limit: 20, offset: 0 });
    expect(outputs.data.filter((f: FileObject) => f.job_id === job)).toHaveLength(1);
    expect(sha256(Buffer.from(await (await fetch((await system("inputUrl", { owner_id: owner.user_id, file_id: stored.id })).url)).arrayBuffer()))).toBe(sha256(png.subarray(0, 100)));

    // The token is the only credential: a changed one, or one for downloads, stores nothing.
    const forged = `${access.output_url!.slice(0, -2)}xx?filename=x.png`;
    expect((await fetch(forged, { method: "PUT", headers: { "content-type": "image/png" }, body: png })).status).toBe(403);
    const getUrl = access.inputs[file.id]!.url.replace("/storage/blob/", "/storage/output/");
    expect((await fetch(`${getUrl}?filename=x.png`, { method: "PUT", headers: { "content-type": "image/png" }, body: png })).status).toBe(403);
    const noName = await fetch(access.output_url!, { method: "PUT", headers: { "content-type": "image/png" }, body: png });
    expect(noName.status).toBe(400);
    expect(((await noName.json()) as ErrorEnvelope).error.code).toBe("BAD_REQUEST");
  });

  it("records nothing of a job output whose PUT is cut part-way, and takes the same output again whole", async () => {
    const owner = newUser();
    const job = randomUUID();
    const access = await as(s.rpc, null)("jobAccess", { owner_id: owner.user_id, job_id: job, file_ids: [] });
    const url = `${access.output_url}?filename=cut.bin`;
    const id = outputFileId(job, "cut.bin");
    const bytes = randomBytes(2 * 1024 * 1024);
    await abandonPut(url, { "content-type": "application/octet-stream" }, bytes);
    // No row at all (the row is written once its bytes are stored, ADR 061), and no bytes.
    await expect(as(s.rpc, owner)("getFile", { file_id: id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await s.driver.size(`${owner.user_id}/${id}`)).toBeUndefined();

    const res = await fetch(url, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: bytes });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id, status: "ready", size: bytes.length, job_id: job });
    expect(await as(s.rpc, owner)("getFile", { file_id: id })).toMatchObject({ status: "ready", size: bytes.length });
    // Confirmed when recorded ready; a createOutput of the same name puts it back to pending, unconfirmed.
    const confirmed = async () => (await s.db.sql<{ yes: boolean }[]>`select confirmed_at is not null as yes from storage.files where id = ${id}`)[0]!.yes;
    expect(await confirmed()).toBe(true);
    await as(s.rpc, null)("createOutput", { owner_id: owner.user_id, job_id: job, filename: "cut.bin", content_type: "application/octet-stream" });
    expect(await as(s.rpc, owner)("getFile", { file_id: id })).toMatchObject({ status: "pending", size: 0 });
    expect(await confirmed()).toBe(false);
  });

  it("does not let the owner confirm a job's output that the worker is still writing", async () => {
    const owner = newUser();
    const ticket: UploadTicket = await as(s.rpc, null)("createOutput", { owner_id: owner.user_id, job_id: randomUUID(), filename: "out.png", content_type: "image/png" });
    await put(ticket, Buffer.from("half an output"));
    await expect(as(s.rpc, owner)("confirmUpload", { file_id: ticket.file_id })).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await as(s.rpc, owner)("getFile", { file_id: ticket.file_id })).toMatchObject({ status: "pending", folder: "output" });
    expect(await s.driver.size(`${owner.user_id}/${ticket.file_id}`)).toBe("half an output".length);
  });

  it("reports the database and the storage directory as up", async () => {
    const health = await as(s.rpc, null)("health", {});
    expect(health).toMatchObject({ status: "up", service: "storage", checks: { database: { status: "up" }, storage: { status: "up" } } });
  });
});

const env = Env.parse(process.env);
// npm test says whether its S3 server checks signatures (s3rver does not); see packages/devstack/src/test-servers.ts.
const s3VerifiesSignatures = process.env.S3_VERIFIES_SIGNATURES === "1";
describe.skipIf(!env.S3_ENDPOINT || !env.S3_BUCKET)("storage-service with the s3 driver", () => {
  let s: Awaited<ReturnType<typeof startStorage>>;
  beforeAll(async () => {
    s = await startStorage(
      () =>
        new S3Driver({ endpoint: env.S3_ENDPOINT, region: env.S3_REGION, bucket: env.S3_BUCKET!, accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY }),
    );
  });
  afterAll(async () => s?.stop());

  it("uploads straight to S3, confirms, and downloads the same bytes", async () => {
    const call = as(s.rpc, newUser());
    const ticket: UploadTicket = await call("createUpload", { filename: "clip.mp4", content_type: "video/mp4", size: mp4.length, max_bytes: 1_000_000 });
    expect(new URL(ticket.upload_url).origin).toBe(new URL(env.S3_ENDPOINT!).origin);
    expect((await put(ticket, mp4)).status).toBe(200);
    expect(await call("confirmUpload", { file_id: ticket.file_id })).toMatchObject({ status: "ready", size: mp4.length, kind: "video" });
    const { url } = await call("downloadUrl", { file_id: ticket.file_id });
    expect(sha256(Buffer.from(await (await fetch(url)).arrayBuffer()))).toBe(sha256(mp4));
  });

  // A server that checks signatures refuses this PUT itself (content-length is signed; the driver contract tests that); s3rver takes it, so confirm must catch it.
  it.skipIf(s3VerifiesSignatures)("rejects at confirm with 413 an object bigger than declared that S3 let through, and deletes it", async () => {
    const caller = newUser();
    const call = as(s.rpc, caller);
    const ticket: UploadTicket = await call("createUpload", { filename: "a.png", content_type: "image/png", size: png.length, max_bytes: 1_000_000 });
    expect((await put(ticket, Buffer.concat([png, Buffer.alloc(10)]))).status).toBe(200);
    await expect(call("confirmUpload", { file_id: ticket.file_id })).rejects.toMatchObject({ code: "PAYLOAD_TOO_LARGE", details: { size: png.length + 10, declared_size: png.length } });
    expect(await s.driver.size(`${caller.user_id}/${ticket.file_id}`)).toBeUndefined();
  });

  it("serves the confirmed bytes even when the upload URL is used again after confirm", async () => {
    const owner = newUser();
    const call = as(s.rpc, owner);
    const ticket: UploadTicket = await call("createUpload", { filename: "poster.png", content_type: "image/png", size: png.length, max_bytes: 1_000_000 });
    expect((await put(ticket, png)).status).toBe(200);
    expect(await call("confirmUpload", { file_id: ticket.file_id })).toMatchObject({ status: "ready", content_type: "image/png" });
    // S3 takes the PUT (the URL is valid for minutes): what was confirmed must not change.
    const playlist = Buffer.from("#EXTM3U\n#EXT-X-VERSION:3\n".padEnd(png.length, "#"));
    await put(ticket, playlist);
    const { url } = await call("downloadUrl", { file_id: ticket.file_id });
    expect(sha256(Buffer.from(await (await fetch(url)).arrayBuffer()))).toBe(sha256(png));
    const input = await as(s.rpc, null)("inputUrl", { owner_id: owner.user_id, file_id: ticket.file_id });
    expect(sha256(Buffer.from(await (await fetch(input.url)).arrayBuffer()))).toBe(sha256(png));
    expect(await call("confirmUpload", { file_id: ticket.file_id })).toMatchObject({ status: "ready", size: png.length });
  });

  it("streams an ingest into S3 and confirms it", async () => {
    const call = as(s.rpc, newUser());
    const { file_id, ingest_url } = await call("createIngest", { filename: "clip.mp4", content_type: "video/mp4", max_bytes: 10_000_000 });
    const res = await streamPut(ingest_url, chunksOf(mp4, 4096));
    expect(res).toMatchObject({ status: 201, body: { id: file_id, size: mp4.length, status: "ready" } });
  });
});
