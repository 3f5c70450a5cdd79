import type { JobInput, JobLimits, JobTypeName, MediaFacts, ResultFile as ResultFileSchema } from "@cutroom/contracts";
import type { Logger } from "@cutroom/runtime";
import type { z } from "zod";
import type { JobModels } from "./models.ts";

export type ResultFile = z.output<typeof ResultFileSchema>;

/**
 * An output as storage recorded it: a result file, and what storage measured of it as it arrived
 * (`media`, absent when storage could not measure it). A handler reports its output's length, size or
 * codec from `media` rather than probing the file again (ADR 056); the job's result keeps a file's
 * four fields only (JobResult), so `media` may stay on the file it returns.
 */
export type StoredOutput = ResultFile & { media?: MediaFacts };

/** A job input downloaded into the job's temp dir. */
export interface InputFile {
  path: string;
  filename: string;
  contentType: string;
  size: number;
  /** What storage measured when it stored the file (ADR 058), when it did: a handler may take it instead of probing. */
  media?: MediaFacts;
}

/** A small job input held in memory (JobContext.readInput): no file is written for it. */
export interface InputBytes {
  bytes: Buffer;
  filename: string;
  contentType: string;
  size: number;
  media?: MediaFacts;
}

/** What a handler returns: the files it uploaded plus any measurements worth showing. */
export interface JobOutput {
  files: ResultFile[];
  [measurement: string]: unknown;
}

/** Everything a handler may touch: it never sees NATS, storage credentials or the database. */
export interface JobContext<I = unknown> {
  /** `projectId`: the job's project, which its outputs join (null or absent: none). */
  job: { id: string; userId: string; type: string; attempt: number; dispatch: number; projectId?: string | null };
  /** The job's input, parsed with its registry schema (defaults applied). */
  input: I;
  /** The bounds of the owner's tier: check the real input against them (checkLimits) before the heavy work. */
  limits: JobLimits;
  /** Aborted when the job is canceled or the worker must give it up; pass it to every await. */
  signal: AbortSignal;
  /**
   * A directory of this run's own, removed when the job ends however it ends. It is made the first time
   * it is read (or an input is fetched into it): a job that works in memory never touches the disk.
   */
  tmpDir: string;
  /** Log lines the job's owner sees as `log` events; they also go to the worker's own log. */
  log: { info: (message: string) => void; warn: (message: string) => void };
  /** The worker's internal log, with the job id: for details the owner must not see. */
  logger: Logger;
  /** Overall progress in percent (0–100); throttled, never goes backwards. */
  progress: (percent: number) => void;
  /** Runs one of the job type's stages, publishing when it starts, ends or fails. */
  stage: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  /** Downloads one of the owner's files into `tmpDir` through a short-lived signed URL. */
  fetchInput: (fileId: string) => Promise<InputFile>;
  /**
   * One of the owner's files in memory when it has at most `maxBytes` (its size is known from the
   * claim); otherwise, or when the claim brought no URL for it, undefined: use fetchInput.
   */
  readInput: (fileId: string, maxBytes: number) => Promise<InputBytes | undefined>;
  /**
   * Uploads a local file as an output of this job and returns it as a result file. `check`: storage
   * checks the bytes as it checks a user's upload (real type, measurable media); for files the
   * worker did not make itself, such as a provider's outputs.
   */
  uploadOutput: (localPath: string, filename: string, contentType: string, opts?: { check?: boolean }) => Promise<StoredOutput>;
  /**
   * uploadOutput in two steps, for a name known before the bytes: storage's upload ticket is asked for
   * now, while the job makes the file, and `upload` then only sends and confirms it.
   */
  prepareOutput: (filename: string, contentType: string, opts?: { check?: boolean }) => PreparedOutput;
  /** Hosted models and the catalog: `ctx.models.run({ jobType, quality, input })` (see models.ts). */
  models: JobModels;
}

/** An output whose upload ticket is on its way (JobContext.prepareOutput). */
export interface PreparedOutput {
  /** Sends a local file, or bytes held in memory. */
  upload: (source: string | Buffer) => Promise<StoredOutput>;
}

export type JobHandler<T extends JobTypeName = JobTypeName> = (ctx: JobContext<JobInput<T>>) => Promise<JobOutput>;

/** Any handler, whatever its input type: what the runtime stores and looks up by job type. */
export type AnyJobHandler = (ctx: JobContext<never>) => Promise<JobOutput>;

/**
 * Handlers by job type, each typed with its own input. The registry does not keep each type's
 * queue as a literal, so which types a queue must handle is checked at start-up instead.
 */
export type JobHandlers = { [T in JobTypeName]?: JobHandler<T> };
