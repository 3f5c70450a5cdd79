import type { Seed } from "./determinism.ts";

/** What an output module gets to make one prediction's files. */
export interface RunContext {
  /** The prediction's own directory: a file written here is served at `url(name)`. */
  outDir: string;
  /** Scratch space (downloaded inputs, intermediate pictures), removed when the prediction ends. */
  workDir: string;
  /** Aborted when the prediction is canceled: ffmpeg is killed, downloads stop. */
  signal: AbortSignal;
  /** Digest of the model and its input, from which every choice is made. */
  seed: Seed;
  url(name: string): string;
  /** Appends a line to the prediction's logs. */
  log(line: string): void;
}

/** A failure the caller caused (an unreadable input): the prediction fails with this message. */
export class PredictionError extends Error {
  override name = "PredictionError";
}
