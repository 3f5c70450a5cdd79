import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, writeFileSync, type ReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { AppError } from "@cutroom/contracts";
import { readIfSmall } from "@cutroom/runtime";
import type { Signer, TokenClaims } from "../signed-token.ts";
import { assertSafeKey, exactBytes, limitBytes, type Audience, type StorageDriver } from "./driver.ts";

/**
 * Objects as files under `dir`. Its signed URLs point at this service's own data plane (see http.ts),
 * which checks the token and streams to or from here: clients' through the gateway (`<publicUrl>/blob/<token>`),
 * workers' straight at it (`<internalUrl>/storage/blob/<token>`), so a job never depends on a gateway.
 */
export class FsDriver implements StorageDriver {
  readonly name = "fs";
  private readonly tmpDir: string;
  /** Multipart uploads: a directory of part files each (`<id>/<part number>`). */
  private readonly partsDir: string;

  constructor(private readonly opts: { dir: string; publicUrl: string; internalUrl: string; signer: Signer }) {
    this.tmpDir = join(opts.dir, ".tmp");
    this.partsDir = join(opts.dir, ".parts");
  }

  async putStream(key: string, body: Readable, { maxBytes }: { maxBytes: number }): Promise<number> {
    const target = this.pathOf(key);
    // A temp file renamed into place: readers never see half an object, a failed upload leaves nothing.
    const tmp = join(this.tmpDir, randomUUID());
    const counter = limitBytes(maxBytes);
    // The folders are made only when missing (ENOENT), not before every object: a worker's outputs are many and small.
    const file = await open(tmp, "w").catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
      await mkdir(this.tmpDir, { recursive: true });
      return open(tmp, "w");
    });
    try {
      await pipeline(body, counter, file.createWriteStream());
      await rename(tmp, target).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
        await mkdir(dirname(target), { recursive: true });
        await rename(tmp, target);
      });
    } catch (err) {
      await file.close().catch(() => {});
      await rm(tmp, { force: true });
      throw err;
    }
    return counter.bytes();
  }

  /**
   * A small object written with the disk's synchronous calls (ADR 049): through libuv's thread pool its
   * open, write, close and rename each cost more in wake-ups than in work. A temp file renamed into
   * place, as putStream does; the folders made only when missing.
   */
  async putBytes(key: string, bytes: Buffer): Promise<void> {
    const target = this.pathOf(key);
    const tmp = join(this.tmpDir, randomUUID());
    const retryMissing = (step: () => void, dir: string) => {
      try {
        step();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        mkdirSync(dir, { recursive: true });
        step();
      }
    };
    retryMissing(() => writeFileSync(tmp, bytes), this.tmpDir);
    try {
      retryMissing(() => renameSync(tmp, target), dirname(target));
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  async readHead(key: string, n: number): Promise<Buffer> {
    const file = await open(this.pathOf(key), "r");
    try {
      // No bigger than the file: a probe asks for 1 MiB, and a buffer that size per small file kept the GC busy.
      const buf = Buffer.allocUnsafe(Math.min(n, (await file.stat()).size));
      const { bytesRead } = await file.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(key))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async presignPut(key: string, { contentType, size, expiresInSec, audience }: { contentType: string; size?: number; expiresInSec: number; audience?: Audience }) {
    assertSafeKey(key);
    const token = this.opts.signer.sign({ op: "put", key, exp: Date.now() + expiresInSec * 1000, max: size, ct: contentType });
    return { url: `${this.blobBase(audience)}/${token}`, headers: { "content-type": contentType } };
  }

  /** The data plane already lets a ticket write once, and only before confirm (see createSignedPutReceiver). */
  async commitUpload(): Promise<void> {}

  async localSource(key: string): Promise<string> {
    return this.pathOf(key);
  }

  async presignGet(key: string, { expiresInSec, filename, contentType, audience }: { expiresInSec: number; filename: string; contentType: string; audience?: Audience }) {
    assertSafeKey(key);
    const token = this.opts.signer.sign({ op: "get", key, exp: Date.now() + expiresInSec * 1000, ct: contentType, fn: filename });
    return `${this.blobBase(audience)}/${token}`;
  }

  private blobBase(audience: Audience = "client"): string {
    return audience === "worker" ? `${this.opts.internalUrl}/storage/blob` : `${this.opts.publicUrl}/blob`;
  }

  async check(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    const probe = join(this.tmpDir, `health-${randomUUID()}`);
    await writeFile(probe, "ok");
    await rm(probe);
  }

  async openStream(key: string): Promise<Readable> {
    return createReadStream(this.pathOf(key));
  }

  async startMultipart(key: string): Promise<string> {
    assertSafeKey(key);
    const id = randomUUID();
    await mkdir(join(this.partsDir, id), { recursive: true });
    return id;
  }

  async putPart(_key: string, uploadId: string, partNumber: number, body: Readable, size: number): Promise<string> {
    const dir = this.multipartDir(uploadId);
    // Written aside and renamed, as putStream does: a part sent again (or two at once) is replaced whole, never mixed.
    const tmp = join(dir, `${partNumber}.${randomUUID()}.tmp`);
    try {
      await pipeline(body, exactBytes(size), createWriteStream(tmp, { flags: "wx" }));
      await rename(tmp, join(dir, String(partNumber)));
    } catch (err) {
      await rm(tmp, { force: true });
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new AppError("NOT_FOUND", "upload not found");
      throw err;
    }
    return `${partNumber}-${size}`;
  }

  async completeMultipart(key: string, uploadId: string, parts: Array<{ partNumber: number }>): Promise<void> {
    const dir = this.multipartDir(uploadId);
    const target = this.pathOf(key);
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = join(this.tmpDir, randomUUID());
    try {
      const out = createWriteStream(tmp);
      for (const part of parts) await pipeline(createReadStream(join(dir, String(part.partNumber))), out, { end: false });
      out.end();
      await finished(out);
      await mkdir(dirname(target), { recursive: true });
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await rm(dir, { recursive: true, force: true });
  }

  async abortMultipart(_key: string, uploadId: string): Promise<void> {
    await rm(this.multipartDir(uploadId), { recursive: true, force: true });
  }

  /** Part directories present (the sweeper's tests look). */
  async listMultipart(): Promise<string[]> {
    return readdir(this.partsDir).catch(() => []);
  }

  private multipartDir(uploadId: string): string {
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new AppError("INVALID_INPUT", "invalid upload id");
    return join(this.partsDir, uploadId);
  }

  /** The claims of one of our signed URLs (FORBIDDEN when forged or expired); the data plane's gate. */
  verify(token: string, op: "put" | "get"): TokenClaims {
    return this.opts.signer.verify(token, op);
  }

  /**
   * An object's size and, when it has at most `maxBytes`, its bytes, from one open (a stat, a read);
   * undefined when there is no such object. The data plane sends a small object whole (ADR 047).
   */
  async readIfSmall(key: string, maxBytes: number): Promise<{ size: number; bytes?: Buffer } | undefined> {
    return readIfSmall(this.pathOf(key), maxBytes).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
  }

  /** A stream of bytes `start..end` (inclusive) of an object, for the data plane's GET. */
  openRead(key: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.pathOf(key), range);
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    return join(this.opts.dir, key);
  }
}
