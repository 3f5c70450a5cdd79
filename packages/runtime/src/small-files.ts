import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** Files and bodies up to this size move whole, in one read or write, with no stream (ADR 042, 047). */
export const SMALL_FILE_BYTES = 256 * 1024;

/**
 * A file's size and, when it has at most `maxBytes`, its bytes, from one open (a stat and a read): a
 * small file is then sent whole, with no stream per transfer (ADR 042, 047). A file that changed size
 * while it was read comes without its bytes (stream it instead). Throws as `open` does (ENOENT).
 *
 * Synchronous (ADR 049): each of the four calls through libuv's thread pool cost a thread's wake-up
 * and an event-loop wake-up, more than the call itself on a local disk; the read is bounded by `maxBytes`.
 */
export async function readIfSmall(path: string, maxBytes: number): Promise<{ size: number; bytes?: Buffer }> {
  const fd = openSync(path, "r");
  try {
    const { size } = fstatSync(fd);
    if (size > maxBytes) return { size };
    const bytes = Buffer.allocUnsafe(size);
    const bytesRead = size === 0 ? 0 : readSync(fd, bytes, 0, size, 0);
    return bytesRead === size ? { size, bytes } : { size };
  } finally {
    closeSync(fd);
  }
}
