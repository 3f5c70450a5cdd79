import { setTimeout as sleep } from "node:timers/promises";
import Replicate, { parseProgressFromLogs } from "replicate";

/** A prediction as Replicate's HTTP API shows it (the fields Cutroom reads). */
export interface Prediction {
  id: string;
  status: "starting" | "processing" | "succeeded" | "failed" | "canceled";
  output?: unknown;
  error?: unknown;
  logs?: string | null;
  metrics?: { predict_time?: number; input_token_count?: number; output_token_count?: number; [metric: string]: unknown };
}

/** A hosted-model API, as the runtime sees it: run a model to its end, report progress, cancel on abort. */
export interface ModelProvider {
  /** replicate, or emulator for the project's Replicate-protocol emulator. */
  readonly name: "replicate" | "emulator";
  /** Outputs are made up (the emulator): the job result says so. */
  readonly synthetic: boolean;
  /**
   * Runs `model` (owner/name[:version]) on `input` and resolves with the succeeded prediction.
   * On abort the prediction is canceled upstream and the signal's reason is thrown; any other
   * ending is a ProviderError.
   */
  run(model: string, input: Record<string, unknown>, opts: { signal: AbortSignal; onProgress?: (percent: number) => void; onCreated?: (predictionId: string) => void }): Promise<Prediction>;
}

/**
 * The provider did not deliver. `retryable` when another attempt may (network errors, 5xx, 429),
 * not when the provider decided (the prediction failed, the model or input was refused).
 */
export class ProviderError extends Error {
  override name = "ProviderError";
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly prediction?: Prediction,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Wakes a waiting run when the provider's webhook says a prediction changed (relayed by the gateway over NATS). */
export interface PredictionWakeups {
  /** The public URL Replicate posts webhooks to (the gateway's /api/v1/webhooks/replicate). */
  url: string;
  /** Calls `wake` on each update of prediction `id` until the returned function is called. */
  subscribe: (id: string, wake: () => void) => () => void;
}

export interface ReplicateProviderOptions {
  token: string;
  baseUrl: string;
  name?: ModelProvider["name"];
  synthetic?: boolean;
  /** Between polls without webhooks. */
  pollIntervalMs?: number;
  /** With webhooks, polls still run this often, in case one is lost. */
  webhookPollIntervalMs?: number;
  wakeups?: PredictionWakeups;
  /** How file inputs (Blobs) travel: uploaded to the provider's files API, else inline (default), or always inline as data URIs. */
  fileEncoding?: "default" | "data-uri";
}

const terminal = new Set(["succeeded", "failed", "canceled"]);

/** 4xx other than 408/429 are the provider's answer (unknown model, bad input); the rest may pass. */
function fromApiError(err: unknown, what: string): ProviderError {
  const status = (err as { response?: { status?: number } })?.response?.status;
  const retryable = status === undefined || status === 408 || status === 429 || status >= 500;
  const reason = status === undefined ? `network error: ${(err as Error)?.message ?? err}` : `HTTP ${status}`;
  return new ProviderError(`${what} failed (${reason})`, retryable, undefined, { cause: err });
}

/**
 * Replicate behind the `ModelProvider` seam, through the `replicate` package. `baseUrl` points it at
 * a proxy or a compatible server (the emulator). It polls the prediction; with `wakeups` it asks
 * Replicate for webhooks and polls only as a fallback, fetching the prediction itself when woken,
 * so what it acts on always comes from the API, never from the relayed body.
 */
export function createReplicateProvider(opts: ReplicateProviderOptions): ModelProvider {
  const client = new Replicate({ auth: opts.token, baseUrl: opts.baseUrl, useFileOutput: false, userAgent: "cutroom-worker" });
  const pollMs = opts.wakeups ? (opts.webhookPollIntervalMs ?? 5000) : (opts.pollIntervalMs ?? 1000);

  const create = async (model: string, input: Record<string, unknown>, signal: AbortSignal): Promise<Prediction> => {
    const [ref, version] = model.split(":");
    if (!/^[^/\s]+\/[^/\s]+$/.test(ref ?? "")) throw new ProviderError(`"${model}" is not a model identifier (owner/name[:version])`, false);
    const webhook = opts.wakeups ? { webhook: opts.wakeups.url, webhook_events_filter: ["start", "logs", "completed"] as ("start" | "logs" | "completed")[] } : {};
    // The package's own data-uri strategy passes its arguments wrongly (1.4.0): inline files are made here.
    const sent = opts.fileEncoding === "data-uri" ? await inlineFiles(input) : input;
    try {
      return (await client.predictions.create({ ...(version ? { version } : { model: ref! }), input: sent, signal, ...webhook })) as Prediction;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw fromApiError(err, `starting ${model}`);
    }
  };

  return {
    name: opts.name ?? "replicate",
    synthetic: opts.synthetic ?? false,
    async run(model, input, { signal, onProgress, onCreated }) {
      signal.throwIfAborted();
      let prediction = await create(model, input, signal);
      onCreated?.(prediction.id);
      let woken: () => void = () => {};
      let wake = new Promise<void>((r) => (woken = r));
      const unsubscribe = opts.wakeups?.subscribe(prediction.id, () => woken()) ?? (() => {});
      const report = (p: Prediction) => {
        const parsed = parseProgressFromLogs(p as Parameters<typeof parseProgressFromLogs>[0]);
        if (parsed) onProgress?.(parsed.percentage * 100);
      };
      let onAbort = () => {};
      const aborted = new Promise<void>((r) => signal.addEventListener("abort", (onAbort = () => r()), { once: true }));
      try {
        report(prediction);
        while (!terminal.has(prediction.status)) {
          await Promise.race([sleep(pollMs, undefined, { ref: false }), wake, aborted]);
          wake = new Promise<void>((r) => (woken = r));
          if (signal.aborted) {
            // Best effort: the job is over for us either way, and an uncanceled prediction only costs.
            await client.predictions.cancel(prediction.id).catch(() => {});
            throw signal.reason;
          }
          try {
            prediction = (await client.predictions.get(prediction.id)) as Prediction;
          } catch (err) {
            // The package already retried GETs on 5xx and 429: past that, the run is in doubt.
            throw fromApiError(err, `reading prediction ${prediction.id}`);
          }
          report(prediction);
        }
      } finally {
        unsubscribe();
        signal.removeEventListener("abort", onAbort);
      }
      if (prediction.status === "succeeded") return prediction;
      const why = prediction.status === "failed" ? `the model failed: ${String(prediction.error ?? "no reason given")}` : "the prediction was canceled at the provider";
      throw new ProviderError(why, false, prediction);
    },
  };
}

/** File inputs (Blobs, at the top level or in lists) as data URIs. */
async function inlineFiles(input: Record<string, unknown>): Promise<Record<string, unknown>> {
  const inline = async (v: unknown): Promise<unknown> => {
    if (v instanceof Blob) return `data:${v.type || "application/octet-stream"};base64,${Buffer.from(await v.arrayBuffer()).toString("base64")}`;
    if (Array.isArray(v)) return Promise.all(v.map(inline));
    return v;
  };
  return Object.fromEntries(await Promise.all(Object.entries(input).map(async ([k, v]) => [k, await inline(v)] as const)));
}

/** Model outputs are a URL, a list of them, or an object holding them: every URL, in order. */
export function outputUrls(output: unknown): string[] {
  if (typeof output === "string") return /^(https?|data):/.test(output) ? [output] : [];
  if (Array.isArray(output)) return output.flatMap(outputUrls);
  if (output && typeof output === "object") return Object.values(output).flatMap(outputUrls);
  return [];
}
