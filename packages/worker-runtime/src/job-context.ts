import { extname, join } from "node:path";
import { isAppError, type FileObject, type JobEventInput, type InputUrl, type JobLimits, type JobStorageAccess, type JobTypeDefinition } from "@cutroom/contracts";
import { inSpan, tracing, type JobEventPublisher, type Logger, type RpcClient, type StorageReplicas } from "@cutroom/runtime";
import { JobFailure } from "./job-failure.ts";
import { createJobModels, type ModelService } from "./models.ts";
import { createProgressReporter } from "./progress.ts";
import { downloadToFile, downloadToMemory, putOutputFile, TransferError, uploadFile } from "./transfer.ts";
import type { JobContext, StoredOutput } from "./types.ts";

export interface JobContextDeps {
  rpc: RpcClient;
  events: JobEventPublisher;
  logger: Logger;
  job: JobContext["job"];
  definition: JobTypeDefinition;
  input: unknown;
  limits: JobLimits;
  signal: AbortSignal;
  /** The job's temp dir, made on the first call (see JobContext.tmpDir). */
  tmpDir: () => string;
  models: ModelService;
  /** storage-service's replicas, which transfers fail over between; absent: each URL as it is. */
  storage?: StorageReplicas;
  /** How long stage and progress events wait before they are published (0: at once); one replaced meanwhile is never published. */
  eventDelayMs: number;
  /** The highest seq of the job this delivery knows (the claim's, then its own events'): raised as events go out. */
  seq: { last: number };
  /** Called as each upload starts: the job's heavy part is over, so the worker may start its next one (ADR 028). */
  onUpload?: () => void;
  /** The signed storage access the claim answered (ADR 033); absent, or past its margin, the context asks storage itself. */
  access?: JobStorageAccess;
}

// A ticket asked for ahead (prepareOutput) is asked again when its signed URL has less than this left.
const TICKET_MARGIN_MS = 30_000;

// Storage answers these when the file itself is the problem: retrying cannot help.
const unusableInput = new Set(["NOT_FOUND", "FORBIDDEN", "INVALID_INPUT", "INVALID_STATE", "BAD_REQUEST"]);

/** A later event makes an earlier one not yet published pointless: a newer progress, the end of the stage it started. */
function replaces(next: JobEventInput, earlier: JobEventInput): boolean {
  if (earlier.type === "progress") return next.type === "progress";
  return earlier.type === "stage" && earlier.status === "running" && next.type === "stage" && next.stage === earlier.stage;
}

/**
 * Builds what a handler sees. `close` stops the progress throttle and publishes what still waits, before
 * the final event goes out; `succeeded`: the handler returned, so stage and progress events are dropped if none went out yet.
 */
export function createJobContext(deps: JobContextDeps): { ctx: JobContext; close: (succeeded: boolean) => Promise<void> } {
  const { rpc, events, logger, job, definition, signal } = deps;
  let currentStage: string | undefined;

  // Above what the claim said the job reached, even when the broker has lost the stored events.
  const publish = async (event: JobEventInput) => {
    const published = await events.publish(job.id, event, { floor: deps.seq.last });
    if (published) deps.seq.last = Math.max(deps.seq.last, published.seq);
  };

  // Progress, stage and log events are best effort: a lost one must not fail the job. They wait
  // eventDelayMs, and one a later event replaces meanwhile is never published (ADR 028).
  const waiting: JobEventInput[] = [];
  let timer: NodeJS.Timeout | undefined;
  // Published one after another, so close() can make sure none lands after the terminal event.
  let sending: Promise<void> = Promise.resolve();
  let announced = false;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    const batch = waiting.splice(0);
    if (batch.length === 0) return;
    announced = true;
    sending = sending.then(async () => {
      for (const event of batch) await publish(event).catch((err) => logger.warn({ err, event: event.type }, "could not publish a job event"));
    });
  };
  const emit = (event: JobEventInput) => {
    for (let i = waiting.length - 1; i >= 0; i--) if (replaces(event, waiting[i]!)) waiting.splice(i, 1);
    waiting.push(event);
    if (deps.eventDelayMs <= 0) flush();
    else timer ??= setTimeout(flush, deps.eventDelayMs);
  };
  const progress = createProgressReporter(async (percent) => emit({ type: "progress", progress: percent, ...(currentStage ? { stage: currentStage } : {}) }));

  const ctx: JobContext = {
    job,
    input: deps.input,
    limits: deps.limits,
    signal,
    get tmpDir() {
      return deps.tmpDir();
    },
    logger,
    log: {
      info(message) {
        logger.info(message);
        emit({ type: "log", level: "info", message });
      },
      warn(message) {
        logger.warn(message);
        emit({ type: "log", level: "warn", message });
      },
    },
    progress: progress.report,

    async stage(name, fn) {
      if (!definition.stages.includes(name)) throw new Error(`"${name}" is not a stage of ${job.type} (${definition.stages.join(", ")})`);
      currentStage = name;
      emit({ type: "stage", stage: name, status: "running" });
      try {
        const value = await (tracing.on ? inSpan(`stage ${name}`, { attributes: { "cutroom.stage": name } }, fn) : fn());
        emit({ type: "stage", stage: name, status: "done" });
        return value;
      } catch (err) {
        if (!signal.aborted) emit({ type: "stage", stage: name, status: "failed" });
        throw err;
      }
    },

    async fetchInput(fileId) {
      const download = async (file: InputUrl) => {
        const path = join(deps.tmpDir(), `input-${fileId}${safeExtension(file.filename)}`);
        const size = await downloadToFile(file.url, path, signal, deps.storage);
        if (size !== file.size) throw new Error(`input ${fileId} arrived with ${size} of ${file.size} bytes`);
        return { path, filename: file.filename, contentType: file.content_type, size, ...(file.media ? { media: file.media } : {}) };
      };
      // The URL the claim brought (ADR 033), unless it is about to expire.
      const given = deps.access?.inputs[fileId];
      if (given && fresh(given.expires_at)) {
        try {
          return await download(given);
        } catch (err) {
          // Gone since the claim (its owner deleted it): storage's own answer below says so, and the job fails at once.
          if (!(err instanceof TransferError && (err.status === 404 || err.status === 403))) throw err;
        }
      }
      const file = await rpc.call("storage", "inputUrl", { owner_id: job.userId, file_id: fileId }).catch((err) => {
        if (isAppError(err) && unusableInput.has(err.code)) throw new JobFailure("INPUT_UNAVAILABLE", `input file ${fileId}: ${err.message}`);
        throw err;
      });
      return download(file);
    },

    async readInput(fileId, maxBytes) {
      // Only with the claim's URL, whose size says up front whether the file is small enough.
      const given = deps.access?.inputs[fileId];
      if (!given || given.size > maxBytes || !fresh(given.expires_at)) return undefined;
      try {
        const bytes = await downloadToMemory(given.url, maxBytes, signal, deps.storage);
        if (bytes.length !== given.size) throw new Error(`input ${fileId} arrived with ${bytes.length} of ${given.size} bytes`);
        return { bytes, filename: given.filename, contentType: given.content_type, size: bytes.length, ...(given.media ? { media: given.media } : {}) };
      } catch (err) {
        // Gone since the claim: fetchInput asks storage, whose answer fails the job with the reason.
        if (err instanceof TransferError && (err.status === 404 || err.status === 403)) return undefined;
        throw err;
      }
    },

    prepareOutput(filename, contentType, opts) {
      // The claim's output URL stores and records the file in one PUT; a provider's bytes (`check`) are confirmed as before.
      const outputUrl = opts?.check ? undefined : deps.access?.output_url;
      if (outputUrl && fresh(deps.access!.expires_at)) {
        return {
          async upload(source) {
            deps.onUpload?.();
            return storedOutput(await putOutputFile(`${outputUrl}?filename=${encodeURIComponent(filename)}`, source, contentType, signal, deps.storage));
          },
        };
      }
      const askTicket = () =>
        rpc.call("storage", "createOutput", {
          owner_id: job.userId,
          job_id: job.id,
          filename,
          content_type: contentType,
          ...(job.projectId ? { project_id: job.projectId } : {}),
        });
      // Asked at once, awaited only by upload: a job that fails before it uploads leaves the refusal unobserved.
      const early = askTicket();
      early.catch(() => {});
      return {
        async upload(source) {
          deps.onUpload?.();
          let ticket = await early;
          // The same file id each time (one per job and name), so a second ask only signs a fresh URL.
          if (Date.parse(ticket.expires_at) - Date.now() < TICKET_MARGIN_MS) ticket = await askTicket();
          await uploadFile(ticket, source, contentType, signal, deps.storage);
          return storedOutput(await rpc.call("storage", "confirmOutput", { owner_id: job.userId, file_id: ticket.file_id, ...(opts?.check ? { check: true } : {}) }));
        },
      };
    },
    uploadOutput: (localPath, filename, contentType, opts) => ctx.prepareOutput(filename, contentType, opts).upload(localPath),

    // Assigned below: it uploads through this very context.
    models: undefined as unknown as JobContext["models"],
  };
  ctx.models = createJobModels({ service: deps.models, get tmpDir() {
    return deps.tmpDir();
  }, signal, progress: ctx.progress, uploadOutput: ctx.uploadOutput, log: ctx.log });
  const close = async (succeeded: boolean) => {
    await progress.stop();
    // A job done before anything of it was announced: the result says every stage is done and progress
    // 100, so what waits would only repeat it. One that showed its way keeps its last steps.
    if (succeeded && !announced) waiting.splice(0, waiting.length, ...waiting.filter((e) => e.type === "log"));
    flush();
    await sending;
  };
  return { ctx, close };
}

/**
 * An uploaded output's facts under the names job results give them, from what storage measured as the
 * bytes arrived (ADR 056): null where it measured nothing (not media, or not measurable in time).
 */
export function outputFacts(file: StoredOutput) {
  const m = file.media;
  return {
    duration: m?.duration_seconds ?? null,
    width: m?.width ?? null,
    height: m?.height ?? null,
    fps: m?.frame_rate ?? null,
    codec: m?.video_codec ?? null,
    has_audio: m?.has_audio ?? null,
  };
}

/** Storage's answer to an output's upload as the handler gets it: the result file and what storage measured. */
const storedOutput = (file: FileObject): StoredOutput => ({ file_id: file.id, filename: file.filename, content_type: file.content_type, size: file.size, ...(file.media ? { media: file.media } : {}) });

/** A signed URL with more than the margin left: one about to expire is asked for again. */
const fresh = (expiresAt: string) => Date.parse(expiresAt) - Date.now() >= TICKET_MARGIN_MS;

/** Keeps the input's extension (ffmpeg and sharp sniff by it) but nothing else from a user-chosen name. */
function safeExtension(filename: string): string {
  const ext = extname(filename).toLowerCase();
  return /^\.[a-z0-9]{1,10}$/.test(ext) ? ext : "";
}
