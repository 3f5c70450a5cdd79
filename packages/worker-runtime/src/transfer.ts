import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";

/**
 * A transfer to or from storage failed. Its message is safe to show the job's owner (no internal
 * names), so that a job that fails for it says why instead of a bare WORKER_ERROR.
 */
export class TransferError extends Error {
  override name = "TransferError";
}

/** "connection refused", "HTTP 403": what went wrong, in words an API user can act on. */
function why(err: unknown): string {
  const code = (err as { cause?: { code?: string } })?.cause?.code ?? (err as { code?: string })?.code;
  const words: Record<string, string> = { ECONNREFUSED: "connection refused", ENOTFOUND: "host not found", ECONNRESET: "connection reset", ETIMEDOUT: "timed out", UND_ERR_CONNECT_TIMEOUT: "timed out" };
  return (code && words[code]) ?? "network error";
}

/** Streams a signed GET URL into a file, never holding the whole body in memory. Returns its size. */
export async function downloadToFile(url: string, path: string, signal: AbortSignal): Promise<number> {
  const res = await fetch(url, { signal }).catch((err) => {
    if (signal.aborted) throw err;
    throw new TransferError(`could not download the input file from storage (${why(err)})`, { cause: err });
  });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new TransferError(`could not download the input file from storage (HTTP ${res.status})`);
  }
  await pipeline(Readable.fromWeb(res.body as WebReadableStream), createWriteStream(path), { signal });
  return (await stat(path)).size;
}

/**
 * Streams a file to a signed PUT URL. Content-Length is sent explicitly: S3 presigned PUTs
 * refuse chunked bodies. Returns the size sent.
 */
export async function uploadFile(
  ticket: { upload_url: string; method: string; headers: Record<string, string> },
  path: string,
  contentType: string,
  signal: AbortSignal,
): Promise<number> {
  const { size } = await stat(path);
  const res = await fetch(ticket.upload_url, {
    method: ticket.method,
    headers: { "content-type": contentType, ...ticket.headers, "content-length": String(size) },
    body: Readable.toWeb(createReadStream(path)) as ReadableStream,
    duplex: "half",
    signal,
  } as RequestInit).catch((err) => {
    if (signal.aborted) throw err;
    throw new TransferError(`could not upload the output file to storage (${why(err)})`, { cause: err });
  });
  await res.arrayBuffer().catch(() => {});
  if (!res.ok) throw new TransferError(`could not upload the output file to storage (HTTP ${res.status})`);
  return size;
}
