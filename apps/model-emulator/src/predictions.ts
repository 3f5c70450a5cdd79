import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@cutroom/runtime";
import { Seed } from "./determinism.ts";
import type { ModelSpec } from "./models.ts";
import { progressLine } from "./progress-log.ts";
import type { RunContext } from "./run-context.ts";
import type { WebhookEvent, WebhookSender } from "./webhooks.ts";

export type Status = "starting" | "processing" | "succeeded" | "failed" | "canceled";
const TERMINAL: ReadonlySet<Status> = new Set(["succeeded", "failed", "canceled"]);

/** A prediction as Replicate's API shows it. */
export interface Prediction {
  id: string;
  model: string;
  version: string;
  input: Record<string, unknown>;
  logs: string;
  output: unknown;
  data_removed: boolean;
  error: string | null;
  status: Status;
  created_at: string;
  started_at?: string;
  completed_at?: string;
  source: "api";
  urls: { get: string; cancel: string };
  metrics?: Record<string, number>;
  webhook?: string;
  webhook_events_filter?: WebhookEvent[];
}

/** Markers a test puts in a prompt or text to steer the emulator. */
export const FAIL_MARKER = "[emulator:fail]";
export const SLOW_MARKER = "[emulator:slow]";

function containsMarker(value: unknown, marker: string): boolean {
  if (typeof value === "string") return value.includes(marker);
  if (Array.isArray(value)) return value.some((v) => containsMarker(v, marker));
  if (value && typeof value === "object") return Object.values(value).some((v) => containsMarker(v, marker));
  return false;
}

interface Entry {
  seq: number;
  p: Prediction;
  spec: ModelSpec;
  parsed: Record<string, unknown>;
  controller: AbortController;
  settled: Promise<void>;
  settle: () => void;
  startedMs?: number;
  finishedMs?: number;
}

export interface PredictionServiceOptions {
  /** Outputs go under `<dir>/<prediction id>/`. */
  dir: string;
  /** Base of the URLs handed out (output files, `urls.get`). */
  publicUrl: () => string;
  webhooks: WebhookSender;
  log: Logger;
  /** Predictions that run at once; the others stay `starting`. */
  concurrency: number;
  /** A finished prediction's files and data go after this long. */
  retentionMs: number;
  /** Results per page of GET /v1/predictions (Replicate's is 100). */
  pageSize?: number;
  /** How long a prediction takes: `slow` for one marked `[emulator:slow]`, else about `normal` (1–2 s by default). */
  pace?: { normalMs: number; slowMs: number };
}

/** Replicate-like ids: 26 lowercase base32 characters. */
const newId = () => {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  return Array.from(randomBytes(26), (b) => alphabet[b & 31]).join("");
};

export type PredictionService = ReturnType<typeof createPredictionService>;

/**
 * Holds predictions in memory and runs them: `starting` (waiting for a free slot), `processing` (the
 * output module works while progress lines are logged over 1–3 s, or ~30 s when slow), then
 * `succeeded` with the output and `metrics.predict_time`, `failed` with an error, or `canceled`.
 * Every change goes to the prediction's webhook when its filter takes that event.
 */
export function createPredictionService(opts: PredictionServiceOptions) {
  const entries = new Map<string, Entry>();
  const pace = opts.pace ?? { normalMs: 1000, slowMs: 30_000 };
  const pageSize = opts.pageSize ?? 100;
  let seq = 0;
  let running = 0;
  const waiting: Array<() => void> = [];

  const snapshot = (e: Entry) => JSON.stringify(e.p);
  const emit = (e: Entry, event: WebhookEvent) => {
    const { webhook, webhook_events_filter: filter } = e.p;
    if (!webhook || (filter && !filter.includes(event))) return;
    opts.webhooks.send(e.p.id, webhook, snapshot(e), event);
  };
  const appendLog = (e: Entry, line: string) => {
    if (TERMINAL.has(e.p.status)) return;
    e.p.logs += `${line}\n`;
    emit(e, "logs");
  };
  const finish = (e: Entry, status: "succeeded" | "failed" | "canceled", fields: Partial<Prediction>) => {
    if (TERMINAL.has(e.p.status)) return false;
    const now = Date.now();
    Object.assign(e.p, fields, { status, completed_at: new Date(now).toISOString() });
    const predict = e.startedMs === undefined ? 0 : (now - e.startedMs) / 1000;
    e.p.metrics = { ...e.p.metrics, predict_time: Math.round(predict * 1000) / 1000, total_time: Math.round(((now - Date.parse(e.p.created_at)) / 1000) * 1000) / 1000 };
    e.finishedMs = now;
    if (status === "succeeded") emit(e, "output");
    emit(e, "completed");
    e.settle();
    return true;
  };

  const acquire = (signal: AbortSignal) =>
    new Promise<boolean>((resolve) => {
      if (running < opts.concurrency) {
        running++;
        return resolve(true);
      }
      const go = () => {
        signal.removeEventListener("abort", drop);
        running++;
        resolve(true);
      };
      const drop = () => {
        waiting.splice(waiting.indexOf(go), 1);
        resolve(false);
      };
      waiting.push(go);
      signal.addEventListener("abort", drop, { once: true });
    });
  const release = () => {
    running--;
    waiting.shift()?.();
  };

  async function run(e: Entry) {
    const { signal } = e.controller;
    if (!(await acquire(signal))) return;
    const outDir = join(opts.dir, e.p.id);
    const workDir = join(outDir, ".work");
    try {
      await mkdir(workDir, { recursive: true });
      signal.throwIfAborted();
      e.startedMs = Date.now();
      Object.assign(e.p, { status: "processing", started_at: new Date(e.startedMs).toISOString() });
      const seed = new Seed(e.p.model, e.parsed);
      const ctx: RunContext = {
        outDir,
        workDir,
        signal,
        seed,
        url: (name) => `${opts.publicUrl()}/files/${e.p.id}/${encodeURIComponent(name)}`,
        log: (line) => appendLog(e, line),
      };
      appendLog(e, `Running ${e.p.model} in the Cutroom model emulator: the output is synthetic.`);
      const slow = containsMarker(e.p.input, SLOW_MARKER);
      const fail = containsMarker(e.p.input, FAIL_MARKER);
      const total = Math.max(1, Math.round(e.spec.steps(e.parsed)));
      const updates = slow ? 30 : 5;
      const plannedMs = slow ? pace.slowMs : pace.normalMs * (1 + seed.unit(90));
      // The output is made while the progress bar runs; a failure is decided before any work.
      const work = fail ? undefined : e.spec.run(ctx, e.parsed);
      work?.catch(() => {});
      const lastUpdate = fail ? Math.ceil(updates / 2) : updates - 1;
      for (let k = 1; k <= lastUpdate; k++) {
        await sleep(plannedMs / updates, undefined, { signal });
        appendLog(e, progressLine(Math.floor((total * k) / updates), total, Date.now() - e.startedMs));
      }
      if (fail) {
        appendLog(e, `Error: the input asked for a failure (${FAIL_MARKER})`);
        finish(e, "failed", { error: `emulated failure: the input contains ${FAIL_MARKER}` });
        return;
      }
      const result = await work!;
      appendLog(e, progressLine(total, total, Date.now() - e.startedMs));
      finish(e, "succeeded", { output: result.output, metrics: result.metrics });
    } catch (err) {
      if (signal.aborted) return;
      opts.log.warn({ prediction: e.p.id, model: e.p.model, err: (err as Error).message }, "prediction failed");
      appendLog(e, `Error: ${(err as Error).message}`);
      finish(e, "failed", { error: (err as Error).message });
    } finally {
      release();
      await rm(workDir, { recursive: true, force: true }).catch(() => {});
      if (e.p.status === "canceled") await rm(outDir, { recursive: true, force: true }).catch(() => {});
    }
  }

  const removeData = async (e: Entry) => {
    Object.assign(e.p, { input: {}, output: null, logs: "", data_removed: true });
    await rm(join(opts.dir, e.p.id), { recursive: true, force: true }).catch(() => {});
  };
  // Replicate drops API predictions' data after an hour; keeping it forever would fill the disk.
  const sweeper = setInterval(() => {
    const before = Date.now() - opts.retentionMs;
    for (const e of entries.values()) {
      if (e.finishedMs !== undefined && e.finishedMs < before && !e.p.data_removed) void removeData(e);
    }
    // The records themselves are small, but not free: the oldest finished ones go past 10,000.
    for (const [id, e] of entries) {
      if (entries.size <= 10_000) break;
      if (e.finishedMs !== undefined) entries.delete(id);
    }
  }, Math.min(60_000, opts.retentionMs));
  sweeper.unref();

  return {
    create(spec: ModelSpec, version: string, input: Record<string, unknown>, parsed: Record<string, unknown>, webhook?: { url: string; events?: WebhookEvent[] }): Prediction {
      const id = newId();
      const base = opts.publicUrl();
      let settle!: () => void;
      const settled = new Promise<void>((r) => (settle = r));
      const p: Prediction = {
        id,
        model: `${spec.owner}/${spec.name}`,
        version,
        input,
        logs: "",
        output: null,
        data_removed: false,
        error: null,
        status: "starting",
        created_at: new Date().toISOString(),
        source: "api",
        urls: { get: `${base}/v1/predictions/${id}`, cancel: `${base}/v1/predictions/${id}/cancel` },
        ...(webhook ? { webhook: webhook.url, ...(webhook.events ? { webhook_events_filter: webhook.events } : {}) } : {}),
      };
      const e: Entry = { seq: ++seq, p, spec, parsed, controller: new AbortController(), settled, settle };
      entries.set(id, e);
      opts.log.info({ prediction: id, model: p.model }, "prediction created");
      emit(e, "start");
      void run(e);
      return p;
    },

    get: (id: string): Prediction | undefined => entries.get(id)?.p,

    /** Cancels a prediction that has not finished; a finished one is returned as it is. */
    cancel(id: string): Prediction | undefined {
      const e = entries.get(id);
      if (!e) return undefined;
      if (finish(e, "canceled", {})) {
        e.controller.abort();
        opts.log.info({ prediction: id }, "prediction canceled");
      }
      return e.p;
    },

    /** Resolves when the prediction has finished, or after `ms`. */
    async waitFor(id: string, ms: number): Promise<void> {
      const e = entries.get(id);
      if (!e) return;
      const timeout = new AbortController();
      await Promise.race([e.settled, sleep(ms, undefined, { signal: timeout.signal }).catch(() => {})]);
      timeout.abort();
    },

    /** Newest first, `pageSize` at a time; `cursor` continues after the last page. */
    list(cursor?: string): { results: Prediction[]; nextCursor?: string } {
      const below = cursor ? Number(Buffer.from(cursor, "base64url").toString()) : Number.POSITIVE_INFINITY;
      const sorted = [...entries.values()].filter((e) => e.seq < below).sort((a, b) => b.seq - a.seq);
      const page = sorted.slice(0, pageSize);
      const last = page.at(-1);
      return { results: page.map((e) => e.p), ...(sorted.length > pageSize && last ? { nextCursor: Buffer.from(String(last.seq)).toString("base64url") } : {}) };
    },

    close() {
      clearInterval(sweeper);
      for (const e of entries.values()) e.controller.abort();
    },
  };
}
