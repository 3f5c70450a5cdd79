import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";

/** Streams a signed GET URL into a file, never holding the whole body in memory. Returns its size. */
export async function downloadToFile(url: string, path: string, signal: AbortSignal): Promise<number> {
  const res = await fetch(url, { signal });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(`input download answered HTTP ${res.status}`);
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
  });
  await res.arrayBuffer().catch(() => {});
  if (!res.ok) throw new Error(`output upload answered HTTP ${res.status}`);
  return size;
}
