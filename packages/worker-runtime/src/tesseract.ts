// Tesseract OCR through its CLI (Debian's tesseract-ocr, with its English data installed beside
// it): nothing is downloaded at run time, and like ffmpeg it is one module the workers call.
import { spawn } from "node:child_process";

export interface OcrWord {
  text: string;
  /** Tesseract's confidence in the word, 0–100. */
  confidence: number;
  /** The word's box in the image's pixels. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface OcrOptions {
  /** Tesseract's language data (installed ones only); "eng" by default. */
  lang?: string;
  /** Page segmentation mode: 11 (sparse text, no order assumed) suits captions burnt over pictures. */
  psm?: number;
  /** Killed past this many ms (default 30 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class TesseractError extends Error {
  override name = "TesseractError";
}

/** The words of tesseract's TSV output (level 5 rows), empty and whitespace-only ones left out. */
export function parseTesseractTsv(tsv: string): OcrWord[] {
  const words: OcrWord[] = [];
  for (const line of tsv.split("\n").slice(1)) {
    const cols = line.split("\t");
    if (cols.length < 12 || cols[0] !== "5") continue;
    const text = cols.slice(11).join("\t").trim();
    const confidence = Number(cols[10]);
    if (!text || !Number.isFinite(confidence) || confidence < 0) continue;
    const [x, y, width, height] = cols.slice(6, 10).map(Number) as [number, number, number, number];
    words.push({ text, confidence, x, y, width, height });
  }
  return words;
}

/** The words tesseract reads in an image file (PNG, JPEG, TIFF…). */
export function ocrImage(path: string, opts: OcrOptions = {}): Promise<OcrWord[]> {
  const { signal } = opts;
  if (signal?.aborted) return Promise.reject(new DOMException("tesseract was aborted", "AbortError"));
  const args = [path, "-", "-l", opts.lang ?? "eng", "--psm", String(opts.psm ?? 11), "tsv"];
  return new Promise((resolve, reject) => {
    // One thread: workers already run several jobs, and OpenMP's spinning threads cost more than they give on small frames.
    const child = spawn("tesseract", args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OMP_THREAD_LIMIT: "1" } });
    const out: Buffer[] = [];
    let stderr = "";
    let ended: Error | undefined;
    const stop = (err: Error) => {
      ended ??= err;
      child.kill("SIGKILL");
    };
    const onAbort = () => stop(new DOMException("tesseract was aborted", "AbortError"));
    const timer = setTimeout(() => stop(new TesseractError("tesseract took longer than its time limit")), opts.timeoutMs ?? 30_000);
    signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    child.once("error", (err) => stop(new TesseractError(`tesseract could not run (is tesseract-ocr installed?): ${err.message}`)));
    child.once("close", (code) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (ended) return reject(ended);
      if (code !== 0) return reject(new TesseractError(`tesseract failed: ${stderr.trim().split("\n").at(-1) || `exit ${code}`}`));
      resolve(parseTesseractTsv(Buffer.concat(out).toString()));
    });
  });
}
