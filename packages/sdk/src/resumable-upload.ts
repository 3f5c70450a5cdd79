import { CutroomError, CutroomNetworkError } from "./errors.ts";
import { sleep } from "./events.ts";
import type { Transport } from "./transport.ts";
import type { ChunkedUploadTicket, CompletedUpload, ResumableUploadStatus } from "./types.ts";

export interface Progress {
  loaded: number;
  total: number;
}

export interface ResumableUploadOptions {
  filename: string;
  /** The file's media type; the Blob's own type, else application/octet-stream (stored as the type its bytes show). */
  fileType?: string;
  /** Bytes per chunk: 5 MiB (the default) to 512 MiB. */
  chunkSize?: number;
  /** The whole file's SHA-256 (hex): the server checks the joined file against it. */
  sha256?: string;
  project_id?: string;
  /** Chunks in flight at once. Default 2. */
  concurrency?: number;
  /** Resume an upload started earlier (another process, a crash): only its missing chunks are sent. */
  uploadId?: string;
  onProgress?: (progress: Progress) => void;
  /** Aborting stops the upload and rejects `done`; the upload stays on the server, resumable by its uploadId until it expires. */
  signal?: AbortSignal;
}

const MiB = 1024 * 1024;
const CHUNK_RETRIES = 3;
/** The reason pause() aborts a run with: that run's error is not the upload's. */
const PAUSED = new DOMException("upload paused", "AbortError");

/**
 * A chunked upload (`POST chunked-upload/init`, `…/chunk/{id}`, `…/complete/{id}`) that can be
 * paused and resumed: `pause()` cuts the chunks in flight, `resume()` asks the server which chunks
 * it is missing and sends only those. `done` settles once, when the file is complete (or failed).
 */
export class ResumableUpload {
  /** Set once the server has accepted the upload (after init, or at once when resuming one). */
  uploadId: string | undefined;
  readonly done: Promise<CompletedUpload>;
  private resolveDone!: (value: CompletedUpload) => void;
  private rejectDone!: (err: unknown) => void;
  private controller: AbortController | undefined;
  private running: Promise<void> | undefined;
  private isPaused = false;
  private settled = false;
  private readonly chunkSize: number;
  private readonly total: number;
  private loaded = 0;

  constructor(
    private readonly transport: Transport,
    private readonly blob: Blob,
    private readonly opts: ResumableUploadOptions,
  ) {
    this.uploadId = opts.uploadId;
    this.chunkSize = opts.chunkSize ?? 5 * MiB;
    this.total = blob.size;
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // A caller that only pauses and resumes must not see an unhandled rejection from `done`.
    this.done.catch(() => {});
    opts.signal?.addEventListener("abort", () => this.fail(opts.signal!.reason), { once: true });
    this.start();
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /** Stops sending: chunks in flight are cut (the server keeps none of a cut chunk). */
  pause(): void {
    if (this.settled || this.isPaused) return;
    this.isPaused = true;
    this.controller?.abort(PAUSED);
  }

  /** Goes on from what the server has: its status lists the missing chunks. */
  resume(): void {
    if (this.settled || !this.isPaused) return;
    this.isPaused = false;
    this.start();
  }

  /** Abandons the upload: stops, deletes what the server holds, and rejects `done`. */
  async cancel(): Promise<void> {
    this.fail(new DOMException("upload canceled", "AbortError"));
    await this.running?.catch(() => {});
    if (this.uploadId) await this.transport.request("DELETE", `/chunked-upload/${this.uploadId}`).catch(() => {});
  }

  private fail(err: unknown) {
    if (this.settled) return;
    this.settled = true;
    this.controller?.abort(err);
    this.rejectDone(err);
  }

  private start() {
    // A resume while the last run is still winding down waits for it: one run at a time.
    const previous = this.running ?? Promise.resolve();
    const controller = new AbortController();
    this.controller = controller;
    this.running = previous.then(() => this.run(controller.signal)).then(
      (result) => {
        if (result && !this.settled) {
          this.settled = true;
          this.resolveDone(result);
        }
      },
      (err) => {
        // A run cut by pause() ends quietly, even when resume() has been called since: the next run goes on.
        if (controller.signal.reason !== PAUSED) this.fail(err);
      },
    );
  }

  private async run(signal: AbortSignal): Promise<CompletedUpload | undefined> {
    if (signal.aborted) return undefined;
    let missing: number[];
    if (this.uploadId) {
      const status = await this.transport.json<ResumableUploadStatus>("GET", `/chunked-upload/${this.uploadId}`, { signal });
      missing = status.missing;
      this.loaded = status.received.reduce((sum, i) => sum + this.sizeOf(i), 0);
    } else {
      const ticket = await this.transport.json<ChunkedUploadTicket>("POST", "/chunked-upload/init", {
        json: {
          filename: this.opts.filename,
          total_size: this.total,
          chunk_size: this.chunkSize,
          file_type: this.opts.fileType || this.blob.type || "application/octet-stream",
          sha256: this.opts.sha256,
          project_id: this.opts.project_id,
        },
        signal,
      });
      this.uploadId = ticket.upload_id;
      missing = Array.from({ length: ticket.chunk_count }, (_, i) => i);
      this.loaded = 0;
    }
    this.report();
    const next = [...missing];
    const worker = async () => {
      for (let index = next.shift(); index !== undefined; index = next.shift()) {
        await this.sendChunk(index, signal);
        this.loaded += this.sizeOf(index);
        this.report();
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.opts.concurrency ?? 2) }, worker));
    return this.transport.json<CompletedUpload>("POST", `/chunked-upload/complete/${this.uploadId}`, { json: {}, signal });
  }

  private sizeOf(index: number): number {
    return Math.max(0, Math.min(this.chunkSize, this.total - index * this.chunkSize));
  }

  private report() {
    this.opts.onProgress?.({ loaded: this.loaded, total: this.total });
  }

  /** One chunk, its SHA-256 sent for the server to check; a dropped connection or a 5xx is tried again. */
  private async sendChunk(index: number, signal: AbortSignal): Promise<void> {
    const bytes = await this.blob.slice(index * this.chunkSize, index * this.chunkSize + this.sizeOf(index)).arrayBuffer();
    const checksum = globalThis.crypto?.subtle ? hex(await globalThis.crypto.subtle.digest("SHA-256", bytes)) : undefined;
    for (let attempt = 1; ; attempt++) {
      // chunk_index and checksum must come before the chunk part: the gateway streams the part through.
      const form = new FormData();
      form.append("chunk_index", String(index));
      if (checksum) form.append("checksum", checksum);
      form.append("chunk", new Blob([bytes]), `chunk-${index}`);
      try {
        await this.transport.request("POST", `/chunked-upload/chunk/${this.uploadId}`, { body: form, signal });
        return;
      } catch (err) {
        const transient = err instanceof CutroomNetworkError || (err instanceof CutroomError && err.status >= 500);
        if (!transient || attempt >= CHUNK_RETRIES || signal.aborted) throw err;
        await sleep(500 * attempt, signal);
      }
    }
  }
}

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}
