import { createWriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PredictionError, type RunContext } from "./run-context.ts";

// An emulator need not take what a GPU host would: a bound keeps a wrong URL from filling the disk.
const MAX_INPUT_BYTES = 1024 ** 3;
const FETCH_TIMEOUT_MS = 120_000;

/**
 * Copies a file input (an http(s) URL, as Replicate fetches, or a data: URI, as the client inlines
 * small files) into the work directory and returns its path.
 */
export async function fetchInput(ctx: RunContext, field: string, source: string): Promise<string> {
  const path = join(ctx.workDir, `input-${field}`);
  if (source.startsWith("data:")) {
    const m = /^data:([^,]*?)(;base64)?,(.*)$/s.exec(source);
    if (!m) throw new PredictionError(`${field}: not a valid data URI`);
    const bytes = m[2] ? Buffer.from(m[3]!, "base64") : Buffer.from(decodeURIComponent(m[3]!));
    await writeFile(path, bytes);
    return path;
  }
  if (!/^https?:\/\//i.test(source)) throw new PredictionError(`${field}: expected an http(s) URL or a data: URI`);
  let res: Response;
  try {
    res = await fetch(source, { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]), redirect: "follow" });
  } catch (err) {
    ctx.signal.throwIfAborted();
    throw new PredictionError(`${field}: could not download it (${(err as Error).message})`);
  }
  if (!res.ok || !res.body) throw new PredictionError(`${field}: downloading it answered HTTP ${res.status}`);
  let received = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      done(received > MAX_INPUT_BYTES ? new PredictionError(`${field}: larger than ${MAX_INPUT_BYTES} bytes`) : null, chunk);
    },
  });
  await pipeline(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream), limit, createWriteStream(path), { signal: ctx.signal });
  return path;
}
