import { createWriteStream, openAsBlob } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { isAppError } from "@cutroom/contracts";
import { inSpan, providerCallDuration, providerCalls, providerCost, SpanKind, stopwatch, tracing } from "@cutroom/runtime";
import { costUsd, defaultCatalog, resolveModel, UnknownModel, type Catalog, type ModelProviderName, type ResolvedModel } from "@cutroom/models";
import { JobFailure, RetryableFailure } from "./job-failure.ts";
import { outputUrls, ProviderError, type ModelProvider, type Prediction } from "./providers/replicate.ts";
import type { InputFile, ResultFile } from "./types.ts";

/** What a job result records about a model run: `provider` in the result, beside the files. */
export interface ProviderRecord {
  /** replicate, emulator, or local (an engine the worker ran itself). */
  name: "replicate" | "emulator" | "local";
  model: string;
  prediction_id: string | null;
  predict_time_s: number | null;
  /** What the run cost in USD: 0 for local engines and the emulator; null when the provider reported too little to price it. */
  cost_usd: number | null;
  /** The catalog price of the usage, what Replicate would charge: lets an offline run show the cost of a real one. */
  list_price_usd: number | null;
  /** The outputs are made up by the emulator, not by the model. */
  synthetic: boolean;
}

/** A run's output file, downloaded into the job's temp dir, not yet uploaded. */
export interface ModelFile {
  path: string;
  filename: string;
  contentType: string;
  size: number;
}

export interface ModelRunRequest {
  /** Catalog key: the job type, or another model-backed use such as `prompt.enhance`. */
  jobType: string;
  quality: string;
  /** A family (sdxl, flux, wan) or an input-implied mode (i2v); absent: the type's default. */
  variant?: string;
  /** The model's inputs; the catalog entry's fixed params are laid over them. */
  input: Record<string, unknown>;
  /** Files the model reads, by input field (`image`): downloaded inputs (ctx.fetchInput), sent as Replicate takes files. */
  files?: Record<string, InputFile | InputFile[]>;
  /** `files` (default): the outputs are URLs, downloaded. `text`: the output is text (a language model's tokens, joined). */
  output?: "files" | "text";
  /** The slice of the job's progress this run spans, in percent; default [5, 90]. */
  progress?: [number, number];
  /** Output files are named `<filename>.<ext>`, or `<filename>-<n>.<ext>` when there are several; default `output`. */
  filename?: string;
  /** At most this many output files are kept, in order; default all. */
  maxOutputs?: number;
  /** Seconds of media the run makes, for a price per output second (video models). */
  outputSeconds?: number;
}

export interface ModelRunResult {
  /** The prediction's raw output (URLs included). */
  output: unknown;
  /** For `output: "text"`: the text. */
  text?: string;
  provider: ProviderRecord;
  model: ResolvedModel;
}

/** The model layer as a job handler sees it (`ctx.models`). */
export interface JobModels {
  /** Which provider serves hosted models in this worker. */
  readonly provider: ModelProviderName;
  /** The catalog entry for a use: check `provider === "local"` to run a local engine yourself. Throws JobFailure INVALID_INPUT when the catalog has none. */
  resolve: (jobType: string, quality: string, variant?: string) => ResolvedModel;
  /** Runs a hosted model; its output files are downloaded into tmpDir, for a handler that works on them before uploading. */
  predict: (req: ModelRunRequest) => Promise<ModelRunResult & { downloads: ModelFile[] }>;
  /** Runs a hosted model and uploads its output files as outputs of the job, in order (type and size checked by storage). */
  run: (req: ModelRunRequest) => Promise<ModelRunResult & { files: ResultFile[] }>;
  /** The record of a local engine's run, for the job result. */
  local: (model: ResolvedModel) => ProviderRecord;
  /** Every run of this job so far, in order. */
  readonly runs: readonly ProviderRecord[];
}

/** What the worker process holds: the catalog, and the provider (absent when none is configured). */
export interface ModelService {
  catalog: Catalog;
  provider: ModelProviderName;
  client?: ModelProvider;
  /** Largest output file accepted from a provider, in bytes. */
  maxOutputBytes: number;
  /**
   * Hosts the provider serves outputs from (`host[:port]`, or `*.domain`): a prediction's output URL
   * elsewhere (an internal address, say) is never fetched, so a provider cannot make the worker a proxy.
   */
  outputHosts: readonly string[];
}

/** Whether `url` may be fetched as a model output: data: URLs, or http(s) on one of `hosts`. */
export function isAllowedOutputUrl(url: string, hosts: readonly string[]): boolean {
  if (url.startsWith("data:")) return true;
  if (!URL.canParse(url)) return false;
  const u = new URL(url);
  if (u.protocol !== "https:" && u.protocol !== "http:") return false;
  return hosts.some((h) => (h.startsWith("*.") ? u.hostname.endsWith(h.slice(1)) : u.host === h || (!h.includes(":") && u.hostname === h && !u.port)));
}

const MAX_OUTPUT_REDIRECTS = 3;

export interface JobModelsDeps {
  service: ModelService;
  tmpDir: string;
  signal: AbortSignal;
  progress: (percent: number) => void;
  uploadOutput: (localPath: string, filename: string, contentType: string, opts?: { check?: boolean }) => Promise<ResultFile>;
  log: { info: (message: string) => void };
}

const extensionOf: Record<string, string> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/webp": "webp",
  "image/gif": "gif",
  "video/mp4": "mp4",
  "video/webm": "webm",
  "video/quicktime": "mov",
  "audio/wav": "wav",
  "audio/x-wav": "wav",
  "audio/mpeg": "mp3",
  "audio/ogg": "ogg",
  "audio/flac": "flac",
  "model/gltf-binary": "glb",
  "application/json": "json",
  "text/plain": "txt",
  "application/zip": "zip",
};
const typeOfExtension = Object.fromEntries(Object.entries(extensionOf).map(([t, e]) => [e, t])) as Record<string, string>;
Object.assign(typeOfExtension, { jpeg: "image/jpeg", wav: "audio/wav" });

/** The content type an output says it is: the response's header, else its URL's extension; storage checks it against the bytes. */
function contentTypeOf(url: string, header: string | null): string {
  const declared = header?.split(";")[0]?.trim().toLowerCase();
  if (declared && declared !== "application/octet-stream" && declared !== "binary/octet-stream") return declared;
  if (url.startsWith("data:")) return url.slice(5, url.search(/[;,]/)).toLowerCase() || "application/octet-stream";
  const ext = /\.([a-z0-9]{1,5})(?:[?#]|$)/i.exec(new URL(url).pathname)?.[1]?.toLowerCase();
  return (ext && typeOfExtension[ext]) ?? "application/octet-stream";
}

/** Refuses a body past `max` bytes while it streams, so a runaway output never fills the disk. */
function byteLimit(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      done(seen > max ? new JobFailure("PROVIDER_ERROR", `a model output is larger than ${max} bytes`) : null, chunk);
    },
  });
}

/** An AppError from storage that says the provider's bytes are not what they claim: the provider's fault, not retried. */
const badOutput = new Set(["UNSUPPORTED_MEDIA_TYPE", "PAYLOAD_TOO_LARGE", "INVALID_INPUT"]);

/** `ctx.models` for one job. */
export function createJobModels(deps: JobModelsDeps): JobModels {
  const { service, signal } = deps;
  const runs: ProviderRecord[] = [];

  const resolve = (jobType: string, quality: string, variant?: string) => {
    try {
      return resolveModel(service.catalog, jobType, quality, variant);
    } catch (err) {
      if (err instanceof UnknownModel) throw new JobFailure("INVALID_INPUT", err.message);
      throw err;
    }
  };

  /** Follows redirects by hand, so that every hop is checked against the provider's output hosts. */
  const fetchOutput = async (url: string): Promise<Response> => {
    for (let hop = 0; ; hop++) {
      if (!isAllowedOutputUrl(url, service.outputHosts)) {
        throw new JobFailure("PROVIDER_ERROR", "a model output is not at a host the provider serves outputs from");
      }
      const res = await fetch(url, { signal, redirect: "manual" }).catch((err) => {
        if (signal.aborted) throw err;
        throw new RetryableFailure("PROVIDER_ERROR", "could not download a model output from the provider", { cause: err });
      });
      const location = res.headers.get("location");
      if (res.status < 300 || res.status >= 400 || !location) return res;
      await res.body?.cancel();
      if (hop >= MAX_OUTPUT_REDIRECTS) throw new JobFailure("PROVIDER_ERROR", "a model output redirects too many times");
      url = new URL(location, url).toString();
    }
  };

  const download = async (url: string, index: number, count: number, name: string): Promise<ModelFile> => {
    const res = await fetchOutput(url);
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      if (res.status >= 500 || res.status === 429) throw new RetryableFailure("PROVIDER_ERROR", `could not download a model output from the provider (HTTP ${res.status})`);
      throw new JobFailure("PROVIDER_ERROR", `could not download a model output from the provider (HTTP ${res.status})`);
    }
    const declaredLength = Number(res.headers.get("content-length") ?? 0);
    if (declaredLength > service.maxOutputBytes) {
      await res.body.cancel();
      throw new JobFailure("PROVIDER_ERROR", `a model output is larger than ${service.maxOutputBytes} bytes`);
    }
    const contentType = contentTypeOf(url, res.headers.get("content-type"));
    const ext = extensionOf[contentType] ?? "bin";
    const filename = count > 1 ? `${name}-${index + 1}.${ext}` : `${name}.${ext}`;
    const path = join(deps.tmpDir, `model-${filename}`);
    await pipeline(Readable.fromWeb(res.body as WebReadableStream), byteLimit(service.maxOutputBytes), createWriteStream(path), { signal });
    return { path, filename, contentType, size: (await stat(path)).size };
  };

  const record = (model: ResolvedModel, prediction: Prediction | undefined, usage: { outputs?: number; outputSeconds?: number }): ProviderRecord => {
    const name = service.client?.name ?? "replicate";
    const synthetic = service.client?.synthetic ?? false;
    const predictTime = typeof prediction?.metrics?.predict_time === "number" ? prediction.metrics.predict_time : null;
    const listPrice = costUsd(model, {
      predict_time_s: predictTime,
      outputs: usage.outputs,
      output_seconds: usage.outputSeconds,
      input_tokens: prediction?.metrics?.input_token_count,
      output_tokens: prediction?.metrics?.output_token_count,
    });
    return {
      name,
      model: model.model,
      prediction_id: prediction?.id ?? null,
      predict_time_s: predictTime,
      cost_usd: synthetic ? 0 : listPrice,
      list_price_usd: listPrice,
      synthetic,
    };
  };

  const predict = async (req: ModelRunRequest) => {
    const model = resolve(req.jobType, req.quality, req.variant);
    if (model.provider === "local") throw new Error(`${req.jobType} at ${req.quality} is the local engine ${model.model}: the handler runs it (ctx.models.resolve tells)`);
    const client = service.client;
    if (!client) throw new JobFailure("PROVIDER_UNAVAILABLE", `${model.model} needs a model provider, and this worker has none (REPLICATE_API_TOKEN or MODEL_EMULATOR_URL)`);
    const [from, to] = req.progress ?? [5, 90];
    const fileInputs: Record<string, Blob | Blob[]> = {};
    for (const [field, f] of Object.entries(req.files ?? {})) {
      const blob = (file: InputFile) => openAsBlob(file.path, { type: file.contentType });
      fileInputs[field] = Array.isArray(f) ? await Promise.all(f.map(blob)) : await blob(f);
    }
    let prediction: Prediction;
    const elapsed = stopwatch();
    try {
      // A span per provider call when tracing is on (ADR 036).
      const run = () =>
        client.run(model.model, { ...req.input, ...fileInputs, ...model.params }, {
          signal,
          onProgress: (p) => deps.progress(from + ((to - from) * p) / 100),
          onCreated: (id) => deps.log.info(`${model.model}: prediction ${id} started${client.synthetic ? " (emulator, synthetic output)" : ""}`),
        });
      prediction = await (tracing.on ? inSpan(`model ${model.model}`, { kind: SpanKind.CLIENT, attributes: { "cutroom.provider": client.name, "cutroom.model": model.model } }, run) : run());
    } catch (err) {
      countProviderCall(client.name, model.model, signal.aborted ? "canceled" : "failed", elapsed());
      if (signal.aborted || !(err instanceof ProviderError)) throw err;
      // A failed prediction is billed too: kept for the job's cost.
      if (err.prediction) runs.push(countProviderCost(record(model, err.prediction, {})));
      if (err.retryable) throw new RetryableFailure("PROVIDER_ERROR", `the model provider is unavailable: ${err.message}`, { cause: err });
      throw new JobFailure("PROVIDER_ERROR", `${model.model}: ${err.message}`, { cause: err });
    }
    countProviderCall(client.name, model.model, "succeeded", elapsed());
    const raw = prediction.output;
    let downloads: ModelFile[] = [];
    let text: string | undefined;
    if (req.output === "text") {
      text = Array.isArray(raw) ? raw.map(String).join("") : typeof raw === "string" ? raw : JSON.stringify(raw ?? "");
    } else {
      const urls = outputUrls(raw).slice(0, req.maxOutputs ?? Infinity);
      if (urls.length === 0) throw new JobFailure("PROVIDER_ERROR", `${model.model} succeeded without any output file`);
      const name = req.filename ?? "output";
      downloads = await Promise.all(urls.map((url, i) => download(url, i, urls.length, name)));
    }
    const provider = countProviderCost(record(model, prediction, { outputs: req.output === "text" ? 1 : downloads.length, outputSeconds: req.outputSeconds }));
    runs.push(provider);
    deps.progress(to);
    return { output: raw, ...(text !== undefined ? { text } : {}), downloads, provider, model };
  };

  return {
    provider: service.provider,
    resolve,
    predict,
    async run(req) {
      const { downloads, ...result } = await predict(req);
      const files: ResultFile[] = [];
      // In order, one at a time: the result lists them as the model returned them.
      for (const d of downloads) {
        try {
          files.push(await deps.uploadOutput(d.path, d.filename, d.contentType, { check: true }));
        } catch (err) {
          if (isAppError(err) && badOutput.has(err.code)) throw new JobFailure("PROVIDER_ERROR", `${result.model.model} returned an output storage refused: ${err.message}`);
          throw err;
        }
      }
      return { ...result, files };
    },
    local(model) {
      const provider: ProviderRecord = { name: "local", model: model.model, prediction_id: null, predict_time_s: null, cost_usd: 0, list_price_usd: 0, synthetic: false };
      runs.push(provider);
      return provider;
    },
    get runs() {
      return runs;
    },
  };
}

function countProviderCall(provider: string, model: string, outcome: "succeeded" | "failed" | "canceled", seconds: number) {
  providerCalls.inc({ provider, model, outcome });
  providerCallDuration.observe({ provider, model }, seconds);
}

function countProviderCost(run: ProviderRecord): ProviderRecord {
  if (run.cost_usd !== null) providerCost.inc({ provider: run.name, model: run.model }, run.cost_usd);
  return run;
}

/** The USD the job's runs cost, summed; null when none ran or one could not be priced. */
export function totalCostUsd(runs: readonly ProviderRecord[]): number | null {
  if (runs.length === 0 || runs.some((r) => r.cost_usd === null)) return null;
  return Math.round(runs.reduce((sum, r) => sum + (r.cost_usd ?? 0), 0) * 1e6) / 1e6;
}

/** A worker without a provider: the default catalog, local engines only. */
export function noModels(catalog: Catalog = defaultCatalog()): ModelService {
  return { catalog, provider: "none", maxOutputBytes: 1024 * 1024 * 1024, outputHosts: [] };
}
