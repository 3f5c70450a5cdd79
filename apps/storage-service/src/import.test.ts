import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { AppError, type Caller, type FileCategory, type FileImport, type FileKind } from "@cutroom/contracts";
import { sqlTag as sql } from "@cutroom/db";
import { createMigratedDb, silentLogger } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStorageHandlers, type StorageDeps } from "./app.ts";
import { FsDriver } from "./drivers/fs-driver.ts";
import { defaultImportOptions, isPublicAddress, type ImportOptions } from "./import.ts";
import { createSigner } from "./signed-token.ts";

const ffmpeg = (...args: string[]) => execFileSync("ffmpeg", ["-v", "error", ...args, "pipe:1"], { maxBuffer: 64 * 1024 * 1024 });
const png = ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=32x32", "-frames:v", "1", "-c:v", "png", "-f", "image2pipe");
const newUser = (): Caller => ({ user_id: randomUUID(), role: "user", tier: "free" });
const log = silentLogger();
const ctxOf = (caller: Caller) => ({ requestId: randomUUID(), caller, log });

/** A local web server whose routes answer as the test says; it records the paths asked for. */
async function webServer(routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void>) {
  const asked: string[] = [];
  const server: Server = createServer((req, res) => {
    asked.push(req.url ?? "");
    const route = routes[req.url ?? ""];
    if (route) route(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const port = (server.address() as AddressInfo).port;
  return { port, url: (path: string) => `http://127.0.0.1:${port}${path}`, asked, close: () => new Promise((done) => server.close(done)) };
}

describe("file imports", () => {
  let db: Awaited<ReturnType<typeof createMigratedDb>>;
  let dir: string;
  let deps: StorageDeps;
  beforeAll(async () => {
    db = await createMigratedDb("imports");
    dir = mkdtempSync(join(tmpdir(), "cutroom-import-"));
    const signer = createSigner(randomBytes(32).toString("hex"));
    deps = { db: db.db, signer, internalUrl: "http://127.0.0.1:1", driver: new FsDriver({ dir, publicUrl: "http://127.0.0.1:1/storage", internalUrl: "http://127.0.0.1:1", signer }) };
  });
  afterAll(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const handlers = (imports: Partial<ImportOptions> = {}) => createStorageHandlers({ ...deps, imports: { ...defaultImportOptions, ...imports } });

  /** Polls the import until it has ended. */
  async function settled(h: ReturnType<typeof handlers>, caller: Caller, id: string): Promise<FileImport> {
    for (;;) {
      const now = await h.getImport({ import_id: id }, ctxOf(caller));
      if (now.status !== "running") return now;
      await sleep(20);
    }
  }

  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => expect.unreachable("the import was accepted"),
      (err: unknown) => {
        expect(err).toBeInstanceOf(AppError);
        return err as AppError;
      },
    );

  it("fetches a picture from a URL (loopback opened for the test), follows a redirect, and keeps it as a checked, measured file", async () => {
    const web = await webServer({
      "/old": (_req, res) => res.writeHead(302, { location: "/pictures/sky%20blue.png" }).end(),
      "/pictures/sky%20blue.png": (_req, res) => res.writeHead(200, { "content-type": "text/plain" }).end(png),
      "/attached": (_req, res) => res.writeHead(200, { "content-disposition": "attachment; filename=\"cafe.png\"; filename*=UTF-8''caf%C3%A9.png" }).end(png),
    });
    const caller = newUser();
    const h = handlers({ allowPrivate: true });
    const started = await h.startImport({ url: web.url("/old"), max_bytes: 1_000_000 }, ctxOf(caller));
    expect(started).toMatchObject({ status: "running", error: null });
    // Until the fetch ends, the file is pending and a confirm cannot race it.
    const done = await settled(h, caller, started.id);
    expect(done).toMatchObject({ status: "succeeded", error: null, file_id: started.file_id });
    expect(done.file).toMatchObject({ id: started.file_id, filename: "sky blue.png", content_type: "image/png", kind: "image", size: png.length, status: "ready", media: { width: 32, height: 32 } });
    const stored = await deps.driver.readHead(`${caller.user_id}/${started.file_id}`, png.length + 10);
    expect(stored.equals(png)).toBe(true);

    const named = await h.startImport({ url: web.url("/attached"), max_bytes: 1_000_000 }, ctxOf(caller));
    expect((await settled(h, caller, named.id)).file).toMatchObject({ filename: "café.png", status: "ready" });
    const given = await h.startImport({ url: web.url("/attached"), filename: "mine.png", max_bytes: 1_000_000 }, ctxOf(caller));
    expect((await settled(h, caller, given.id)).file).toMatchObject({ filename: "mine.png" });
    await web.close();
  });

  it("refuses a loopback URL at once with the default settings, and creates nothing", async () => {
    const web = await webServer({ "/a.png": (_req, res) => res.end(png) });
    const caller = newUser();
    const err = await refusal(handlers().startImport({ url: web.url("/a.png"), max_bytes: 1_000_000 }, ctxOf(caller)));
    expect(err).toMatchObject({ code: "IMPORT_URL_REFUSED", status: 422, details: { reason: "private_address", address: "127.0.0.1" } });
    expect(web.asked).toEqual([]);
    const list = await handlers().listFiles({ limit: 20, offset: 0 }, ctxOf(caller));
    expect(list.total).toBe(0);
    for (const url of ["http://localhost:9/x.png", "http://[::1]:9/x.png", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/x.png", "http://no-such-host.invalid/x.png"]) {
      expect(await refusal(handlers().startImport({ url, max_bytes: 1_000_000 }, ctxOf(caller)))).toMatchObject({ code: "IMPORT_URL_REFUSED" });
    }
    await web.close();
  });

  it("refuses file:// and other schemes", async () => {
    const caller = newUser();
    for (const url of ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://example.com/"]) {
      const err = await refusal(handlers().startImport({ url, max_bytes: 1_000_000 }, ctxOf(caller)));
      expect(err).toMatchObject({ code: "IMPORT_URL_REFUSED", status: 422, details: { reason: "scheme" } });
    }
  });

  it("refuses a redirect to a loopback address: the import fails with the reason, and the private server is never asked", async () => {
    const inside = await webServer({ "/secret.png": (_req, res) => res.end(png) });
    const outside = await webServer({ "/go": (_req, res) => res.writeHead(302, { location: inside.url("/secret.png") }).end() });
    const caller = newUser();
    // Only the redirecting server stands in for a public one; every other address keeps the default rule.
    const h = handlers({ allowPrivate: (_address, port) => port === outside.port });
    const started = await h.startImport({ url: outside.url("/go"), max_bytes: 1_000_000 }, ctxOf(caller));
    const done = await settled(h, caller, started.id);
    expect(done).toMatchObject({ status: "failed", error: { code: "IMPORT_URL_REFUSED", status: 422, details: { reason: "private_address" } } });
    expect(inside.asked).toEqual([]);
    expect((await h.getFile({ file_id: started.file_id }, ctxOf(caller))).status).toBe("rejected");
    await Promise.all([inside.close(), outside.close()]);
  });

  it("refuses a file over the tier's limit with 413, whether or not the server sends its length", async () => {
    const big = Buffer.concat([png, randomBytes(4000)]);
    const web = await webServer({
      "/sized.png": (_req, res) => res.writeHead(200, { "content-length": big.length }).end(big),
      // No content-length: the bytes are counted as they arrive.
      "/streamed.png": (_req, res) => {
        res.writeHead(200, { "transfer-encoding": "chunked" });
        Readable.from([big.subarray(0, 1000), big.subarray(1000), big]).pipe(res);
      },
    });
    const caller = newUser();
    const h = handlers({ allowPrivate: (_address, port) => port === web.port });
    for (const path of ["/sized.png", "/streamed.png"]) {
      const started = await h.startImport({ url: web.url(path), max_bytes: 2000 }, ctxOf(caller));
      const done = await settled(h, caller, started.id);
      expect(done).toMatchObject({ status: "failed", error: { code: "PAYLOAD_TOO_LARGE", status: 413 } });
      expect(await deps.driver.size(`${caller.user_id}/${started.file_id}`)).toBeUndefined();
    }
    await web.close();
  });

  it("refuses what is not an image, video or audio file with 415", async () => {
    const web = await webServer({ "/notes.png": (_req, res) => res.writeHead(200, { "content-type": "image/png" }).end("just some words, not a picture\n".repeat(20)) });
    const caller = newUser();
    const h = handlers({ allowPrivate: true });
    const started = await h.startImport({ url: web.url("/notes.png"), max_bytes: 1_000_000 }, ctxOf(caller));
    expect(await settled(h, caller, started.id)).toMatchObject({ status: "failed", error: { code: "UNSUPPORTED_MEDIA_TYPE", status: 415 } });
    await web.close();
  });

  it("fails an import that outlasts its timeout, and one the server answers with an error", async () => {
    const web = await webServer({
      "/slow.png": (_req, res) => {
        res.writeHead(200);
        res.write(png.subarray(0, 10)); // and never the rest
      },
      "/gone.png": (_req, res) => res.writeHead(410).end(),
    });
    const caller = newUser();
    const h = handlers({ allowPrivate: true, timeoutMs: 300 });
    const slow = await h.startImport({ url: web.url("/slow.png"), max_bytes: 1_000_000 }, ctxOf(caller));
    expect(await settled(h, caller, slow.id)).toMatchObject({ status: "failed", error: { code: "IMPORT_FETCH_FAILED", status: 502, details: { reason: "timeout" } } });
    const gone = await h.startImport({ url: web.url("/gone.png"), max_bytes: 1_000_000 }, ctxOf(caller));
    expect(await settled(h, caller, gone.id)).toMatchObject({ status: "failed", error: { code: "IMPORT_FETCH_FAILED", details: { reason: "http_status", status: 410 } } });
    await web.close();
  });

  it("shows an import only to its owner", async () => {
    const web = await webServer({ "/a.png": (_req, res) => res.end(png) });
    const owner = newUser();
    const h = handlers({ allowPrivate: true });
    const started = await h.startImport({ url: web.url("/a.png"), max_bytes: 1_000_000 }, ctxOf(owner));
    await settled(h, owner, started.id);
    expect(await refusal(h.getImport({ import_id: started.id }, ctxOf(newUser())))).toMatchObject({ code: "NOT_FOUND" });
    await web.close();
  });

  it("tells public addresses from private, loopback, link-local and reserved ones", () => {
    for (const a of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]) expect(isPublicAddress(a), a).toBe(true);
    for (const a of ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12::1", "::ffff:127.0.0.1", "64:ff9b::10.0.0.1", "2001:db8::1", "ff02::1", "not an address"]) {
      expect(isPublicAddress(a), a).toBe(false);
    }
  });

  describe("download URLs and lists", () => {
    /** A ready file of `caller`, stored through the driver as a worker's output would be. */
    async function readyFile(caller: Caller, o: { folder: "input" | "output"; contentType: string; name: string }) {
      const id = randomUUID();
      await deps.driver.putStream(`${caller.user_id}/${id}`, Readable.from([png]), { maxBytes: 1e6 });
      await db.db.execute(sql`insert into storage.files (id, owner_id, folder, filename, content_type, size, status, storage_key)
        values (${id}, ${caller.user_id}, ${o.folder}, ${o.name}, ${o.contentType}, ${png.length}, 'ready', ${`${caller.user_id}/${id}`})`);
      return id;
    }

    it("signs a download URL for the lifetime asked, and an hour by default", async () => {
      const caller = newUser();
      const id = await readyFile(caller, { folder: "input", contentType: "image/png", name: "a.png" });
      const before = Date.now();
      const week = await handlers().downloadUrl({ file_id: id, expires_in: 604800 }, ctxOf(caller));
      const hour = await handlers().downloadUrl({ file_id: id }, ctxOf(caller));
      expect(week.expires_in).toBe(604800);
      expect(Date.parse(week.expires_at)).toBeGreaterThanOrEqual(before + 604800_000 - 1000);
      expect(hour.expires_in).toBe(3600);
      expect(Date.parse(hour.expires_at)).toBeLessThan(Date.parse(week.expires_at));
      // The token itself carries the lifetime (fs signs its own URLs): a week from now.
      const claims = JSON.parse(Buffer.from(week.url.split("/").pop()!.split(".")[0]!, "base64url").toString()) as { exp: number };
      expect(claims.exp).toBeGreaterThanOrEqual(before + 604800_000);
    });

    it("lists output categories (final: a pipeline run's outputs) and carries download URLs with include=url", async () => {
      const caller = newUser();
      const input = await readyFile(caller, { folder: "input", contentType: "image/png", name: "in.png" });
      const image = await readyFile(caller, { folder: "output", contentType: "image/png", name: "frame.png" });
      const clip = await readyFile(caller, { folder: "output", contentType: "video/mp4", name: "clip.mp4" });
      const final = await readyFile(caller, { folder: "output", contentType: "video/mp4", name: "final.mp4" });
      const voice = await readyFile(caller, { folder: "output", contentType: "audio/mpeg", name: "voice.mp3" });
      await db.db.execute(sql`insert into jobs.pipelines (id, user_id, type, flavor, input, params, tier, status, stages, outputs, estimate)
        values (${randomUUID()}, ${caller.user_id}, 'storyboard', 'default', '{}', '{}', 'free', 'succeeded', '[]', ${JSON.stringify([final])}::jsonb, '{"credits":0,"eta_seconds":null}')`);
      const ids = async (q: { category?: FileCategory; kind?: FileKind }) =>
        (await handlers().listFiles({ limit: 20, offset: 0, ...q }, ctxOf(caller))).data.map((f) => f.id);
      expect(await ids({ category: "images" })).toEqual([image]);
      expect(await ids({ category: "videos" })).toEqual([clip]);
      expect(await ids({ category: "audio" })).toEqual([voice]);
      expect(await ids({ category: "final" })).toEqual([final]);
      expect(await ids({ kind: "image" })).toEqual([image, input]);
      const withUrls = await handlers().listFiles({ limit: 20, offset: 0, include: "url" }, ctxOf(caller));
      expect(withUrls.data).toHaveLength(5);
      for (const f of withUrls.data) expect(f.download).toMatchObject({ url: expect.stringContaining("/blob/"), expires_at: expect.any(String) });
      expect((await handlers().listFiles({ limit: 20, offset: 0 }, ctxOf(caller))).data[0]!.download).toBeUndefined();
    });
  });
});
