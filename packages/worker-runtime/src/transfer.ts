import { createReadStream, createWriteStream } from "node:fs";
import { stat, writeFile } from "node:fs/promises";
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { FileObject } from "@cutroom/contracts";
import { createStorageReplicas, readIfSmall, SMALL_FILE_BYTES, type StorageReplicas } from "@cutroom/runtime";

/**
 * A transfer to or from storage failed. Its message is safe to show the job's owner (no internal
 * names), so that a job that fails for it says why instead of a bare WORKER_ERROR.
 */
export class TransferError extends Error {
  override name = "TransferError";
  /** storage's HTTP status, when it answered. */
  status?: number;
}

/** "connection refused", "HTTP 403": what went wrong, in words an API user can act on. */
function why(err: unknown): string {
  const code = (err as { cause?: { code?: string } })?.cause?.code ?? (err as { code?: string })?.code;
  const words: Record<string, string> = { ECONNREFUSED: "connection refused", ENOTFOUND: "host not found", ECONNRESET: "connection reset", ETIMEDOUT: "timed out", UND_ERR_CONNECT_TIMEOUT: "timed out" };
  return (code && words[code]) ?? "network error";
}

// Transfers to URLs on no replica's address (S3's, say) go as they are.
const direct = createStorageReplicas([]);

/**
 * One request to storage: the connection first (a dead replica passed over for the next, see
 * StorageReplicas), then the body, from `open` so nothing of it is spent on a replica that was down.
 */
async function send(storage: StorageReplicas, url: string, opts: { method: string; headers?: OutgoingHttpHeaders; open?: () => Readable; bytes?: Buffer; signal: AbortSignal }, what: string): Promise<IncomingMessage> {
  const failed = (err: unknown) => {
    if (opts.signal.aborted) return err;
    return new TransferError(`could not ${what} storage (${why(err)})`, { cause: err });
  };
  const req = await storage.connect(url, { method: opts.method, headers: opts.headers, signal: opts.signal }).catch((err) => {
    throw failed(err);
  });
  return new Promise((resolve, reject) => {
    req.once("response", resolve);
    req.on("error", (err) => reject(failed(err)));
    // A small body goes whole: headers and bytes in one write.
    if (opts.bytes) return void req.end(opts.bytes);
    if (!opts.open) return void req.end();
    // A failed read of the file fails the request too, and is answered above.
    pipeline(opts.open(), req).catch(() => {});
  });
}

/** A signed GET's answer, once storage said 2xx; a TransferError (with storage's status) otherwise. */
async function download(url: string, signal: AbortSignal, storage: StorageReplicas): Promise<IncomingMessage> {
  const res = await send(storage, url, { method: "GET", signal }, "download the input file from");
  const status = res.statusCode ?? 500;
  if (status < 200 || status >= 300) {
    res.resume();
    throw Object.assign(new TransferError(`could not download the input file from storage (HTTP ${status})`), { status });
  }
  return res;
}

/** The whole body, in the chunks it came in as one buffer. */
async function readWhole(res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/** Streams a signed GET URL into a file, holding in memory no more than a small body. Returns its size. */
export async function downloadToFile(url: string, path: string, signal: AbortSignal, storage: StorageReplicas = direct): Promise<number> {
  const res = await download(url, signal, storage);
  if (Number(res.headers["content-length"]) <= SMALL_FILE_BYTES) {
    const bytes = await readWhole(res);
    await writeFile(path, bytes, { signal });
    return bytes.length;
  }
  await pipeline(res, createWriteStream(path), { signal });
  return (await stat(path)).size;
}

/** A signed GET URL's body in memory, for a file known to be small (JobContext.readInput); larger than `maxBytes` is a TransferError. */
export async function downloadToMemory(url: string, maxBytes: number, signal: AbortSignal, storage: StorageReplicas = direct): Promise<Buffer> {
  const res = await download(url, signal, storage);
  if (!(Number(res.headers["content-length"]) <= maxBytes)) {
    res.destroy();
    throw new TransferError("the input file from storage is larger than it was said to be");
  }
  return readWhole(res);
}

/** A body to send: bytes held in memory as they are; a file's size, and its bytes when it is small enough to send whole (SMALL_FILE_BYTES). */
const bodyOf = (source: string | Buffer): Promise<{ size: number; bytes?: Buffer }> =>
  typeof source === "string" ? readIfSmall(source, SMALL_FILE_BYTES) : Promise.resolve({ size: source.length, bytes: source });

/**
 * Streams a file (or sends bytes held in memory) to a signed PUT URL. Content-Length is sent explicitly: S3 presigned PUTs
 * refuse chunked bodies. The file is opened once a replica took the connection, so a retry on
 * the next one reads it from its start. Returns the size sent.
 */
export async function uploadFile(
  ticket: { upload_url: string; method: string; headers: Record<string, string> },
  source: string | Buffer,
  contentType: string,
  signal: AbortSignal,
  storage: StorageReplicas = direct,
): Promise<number> {
  const { size, bytes } = await bodyOf(source);
  const res = await send(
    storage,
    ticket.upload_url,
    { method: ticket.method, headers: { "content-type": contentType, ...ticket.headers, "content-length": String(size) }, open: () => createReadStream(source as string), bytes, signal },
    "upload the output file to",
  );
  res.resume();
  await finished(res).catch(() => {});
  if ((res.statusCode ?? 500) >= 300) throw new TransferError(`could not upload the output file to storage (HTTP ${res.statusCode})`);
  return size;
}

/**
 * Streams a job's output (a file, or bytes held in memory) to its storage access's output URL (ADR 033), which stores and records it in
 * one request: the answer is the ready file, checked against its contract.
 */
export async function putOutputFile(url: string, source: string | Buffer, contentType: string, signal: AbortSignal, storage: StorageReplicas = direct): Promise<FileObject> {
  const { size, bytes } = await bodyOf(source);
  const res = await send(storage, url, { method: "PUT", headers: { "content-type": contentType, "content-length": String(size) }, open: () => createReadStream(source as string), bytes, signal }, "upload the output file to");
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  if ((res.statusCode ?? 500) >= 300) throw new TransferError(`could not upload the output file to storage (HTTP ${res.statusCode})`);
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString());
  } catch {}
  const file = FileObject.safeParse(body);
  if (!file.success) throw new TransferError("could not upload the output file to storage (an unreadable answer)");
  return file.data;
}
