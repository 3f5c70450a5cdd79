import { Transform, type Readable } from "node:stream";
import { AppError } from "@cutroom/contracts";

/**
 * Who a signed URL is for: a client outside the deployment, or a worker inside it. A driver
 * reached at another address from outside (S3 behind Docker's port mapping) signs each for its own.
 */
export type Audience = "client" | "worker";

/** Where bytes live. Keys are `<owner>/<file_id>`; the database says what they mean. */
export interface StorageDriver {
  readonly name: "fs" | "s3";
  /** Stores a stream under `key` and returns its size; past `maxBytes` it throws PAYLOAD_TOO_LARGE and leaves nothing behind. */
  putStream(key: string, body: Readable, opts: { maxBytes: number; contentType?: string }): Promise<number>;
  /** Stores bytes already in memory under `key` (a small body, at most SMALL_FILE_BYTES: ADR 049), whole or not at all. */
  putBytes(key: string, bytes: Buffer, opts?: { contentType?: string }): Promise<void>;
  /** Up to the first `n` bytes of an object (fewer when it is shorter). */
  readHead(key: string, n: number): Promise<Buffer>;
  /** The object's size, or undefined when there is none. */
  size(key: string): Promise<number | undefined>;
  /** Removes the object; removing a missing one is fine. */
  delete(key: string): Promise<void>;
  /**
   * A URL a client PUTs the bytes to, with the headers it must send. With `size`, a bigger body is
   * refused (fs: 413 mid-stream; s3: the signed content-length no longer matches); without it
   * (worker outputs, whose size is unknown up front) any size is taken.
   */
  presignPut(key: string, opts: { contentType: string; size?: number; expiresInSec: number; audience?: Audience }): Promise<{ url: string; headers: Record<string, string> }>;
  /**
   * Makes what was PUT to `key`'s signed URL the object at `key`, where that URL cannot write any more;
   * called once the row is claimed for confirm, before its bytes are checked. fs: nothing to do (its data
   * plane takes one PUT per ticket, and none after confirm); s3: a copy out of the URL's prefix (S3 takes
   * any number of PUTs until the URL expires).
   */
  commitUpload(key: string): Promise<void>;
  /** Where a program this service runs (ffprobe) reads the object: fs its path; s3 a short-lived signed GET on this service's endpoint. */
  localSource(key: string): Promise<string>;
  /** A URL anyone holding it can download the object from, until it expires. */
  presignGet(key: string, opts: { expiresInSec: number; filename: string; contentType: string; audience?: Audience }): Promise<string>;
  /** Throws when the driver cannot store objects right now (for health). */
  check(): Promise<void>;
  /** The object's bytes as a stream (a resumable upload's SHA-256 is checked from it). */
  openStream(key: string): Promise<Readable>;
  /**
   * A multipart upload that becomes the object at `key` on completeMultipart (ADR 030): s3 its own
   * (parts straight to S3), fs a directory of part files. Returns its id.
   */
  startMultipart(key: string, opts: { contentType: string }): Promise<string>;
  /** Stores part `partNumber` (1-based) from `body`, which must be exactly `size` bytes (else INVALID_INPUT, nothing kept); returns its ETag. A part sent again replaces it. */
  putPart(key: string, uploadId: string, partNumber: number, body: Readable, size: number): Promise<string>;
  /** Joins the parts, in order, into the object at `key`. */
  completeMultipart(key: string, uploadId: string, parts: Array<{ partNumber: number; etag: string }>): Promise<void>;
  /** Drops the parts; a multipart upload already gone is fine. */
  abortMultipart(key: string, uploadId: string): Promise<void>;
}

/** Passes exactly `size` bytes through: more or fewer fail the stream with INVALID_INPUT. */
export function exactBytes(size: number): Transform {
  let bytes = 0;
  const wrong = () => new AppError("INVALID_INPUT", `the part must be ${size} bytes`, { expected_size: size, size: bytes });
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > size) done(wrong());
      else done(null, chunk);
    },
    flush(done) {
      done(bytes === size ? null : wrong());
    },
  });
}

/** Passes bytes through while counting them; fails with PAYLOAD_TOO_LARGE once there are more than `maxBytes`. */
export function limitBytes(maxBytes: number): Transform & { bytes: () => number } {
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > maxBytes) done(tooLarge(maxBytes));
      else done(null, chunk);
    },
  });
  return Object.assign(counter, { bytes: () => bytes });
}

export const tooLarge = (maxBytes: number) => new AppError("PAYLOAD_TOO_LARGE", `the body is larger than ${maxBytes} bytes`, { max_bytes: maxBytes });

/** Keys are ours (`<uuid>/<uuid>`), but a driver still refuses anything that could climb out of its root. */
export function assertSafeKey(key: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/.test(key) || key.split("/").includes("..")) {
    throw new AppError("INVALID_INPUT", "invalid storage key");
  }
}

/** `attachment` with an ASCII fallback and the exact UTF-8 name (RFC 6266). */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}
