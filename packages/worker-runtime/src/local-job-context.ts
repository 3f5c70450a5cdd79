import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jobLimits, jobTypes } from "@cutroom/contracts";
import { createJobModels, noModels, type ModelService } from "./models.ts";
import type { JobContext, ResultFile } from "./types.ts";

/*
 * A job context as the runtime makes one, without NATS or storage, for a handler's unit tests: the
 * input file is a local one, uploads are copied aside into `dir` (the job's tmpDir too) and listed.
 */

let uploaded = 0;

export interface LocalJobOptions {
  /** The job's folder: its tmpDir, and where uploads are copied. */
  dir: string;
  /** The models the job may run; none when absent. */
  service?: ModelService;
  /** What fetchInput hands over; without it fetchInput throws, as for a type that reads no files. */
  file?: { path: string; filename: string; contentType: string };
}

export function localJobContext<I>(type: keyof typeof jobTypes, input: Record<string, unknown>, opts: LocalJobOptions) {
  const { dir, file } = opts;
  const uploads: { path: string; filename: string; contentType: string }[] = [];
  const controller = new AbortController();
  const uploadOutput = async (source: string | Buffer, filename: string, contentType: string): Promise<ResultFile> => {
    const kept = join(dir, `uploaded-${++uploaded}-${filename}`);
    await (typeof source === "string" ? copyFile(source, kept) : writeFile(kept, source));
    uploads.push({ path: kept, filename, contentType });
    return { file_id: crypto.randomUUID(), filename, content_type: contentType, size: 0 };
  };
  const log = { info: () => {}, warn: () => {} };
  const ctx = {
    job: { id: crypto.randomUUID(), userId: crypto.randomUUID(), type, attempt: 1, dispatch: 1 },
    input: jobTypes[type].input.parse(input) as I,
    limits: jobLimits("free"),
    signal: controller.signal,
    tmpDir: dir,
    log,
    logger: undefined as never,
    progress: () => {},
    stage: <T>(_name: string, fn: () => Promise<T>) => fn(),
    fetchInput: async () => {
      if (!file) throw new Error(`${type} reads no files`);
      return { path: file.path, filename: file.filename, contentType: file.contentType, size: (await readFile(file.path)).byteLength };
    },
    // As the runtime without a claim's URL: the handler falls back to fetchInput.
    readInput: async () => undefined,
    uploadOutput,
    prepareOutput: (filename: string, contentType: string) => ({ upload: (source: string | Buffer) => uploadOutput(source, filename, contentType) }),
    models: createJobModels({ service: opts.service ?? noModels(), tmpDir: dir, signal: controller.signal, progress: () => {}, uploadOutput, log }),
  } satisfies JobContext<I>;
  return { ctx, uploads };
}
