import { fork, type ChildProcess } from "node:child_process";
import type { JobLimits } from "@cutroom/contracts";
import { inSpan, tracing } from "@cutroom/runtime";
import { JobFailure } from "@cutroom/worker-runtime";
import type { BorderReport, KeyedImage } from "./chroma-key.ts";
import type { EngineOp, EngineRequest, engineOps } from "./engine-process.ts";
import { resizeSmallBytes, resizeSmallImage, type ResizedBytes, type ResizedImage, type ResizeOptions } from "./resize.ts";

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { failure: boolean; code?: string; message: string } };
type Ops = typeof engineOps;

export interface ImageEngine {
  /**
   * Runs resizeImage in a child process; an abort kills that process at once (CPU and memory back). An
   * image of at most `inlineMaxPixels` in and out is resized here instead, done sooner than a message round trip.
   */
  resize(inputPath: string, outputPath: string, opts: ResizeOptions, signal: AbortSignal): Promise<ResizedImage>;
  /** An image of at most `inlineMaxPixels` in and out resized here from bytes to bytes; undefined (nothing decoded) when it is larger: use resize. */
  resizeBytes(input: Buffer, opts: ResizeOptions, signal: AbortSignal): Promise<ResizedBytes | undefined>;
  /** How much of the picture's border is screen green (chroma-key.ts), in a child process like resize. */
  inspectBorder(inputPath: string, limits: JobLimits, signal: AbortSignal): Promise<BorderReport>;
  /** A green screen keyed out into an RGBA PNG (chroma-key.ts). */
  chromaKey(inputPath: string, outputPath: string, opts: Parameters<Ops["chromaKey"]>[2], signal: AbortSignal): Promise<KeyedImage>;
  /** A model's cut-out as an RGBA PNG of the input's size (chroma-key.ts). */
  toAlphaPng(inputPath: string, outputPath: string, opts: Parameters<Ops["toAlphaPng"]>[2], signal: AbortSignal): Promise<KeyedImage>;
  /** Starts one process ahead of the first job (loading sharp takes about a second). */
  warm(): Promise<void>;
  /** Pids of the engine processes alive now (idle or busy). */
  pids(): number[];
  /** Kills every engine process. */
  close(): void;
}

// 512×512: decoded and encoded in a few milliseconds, so a cancel waits no longer than that (ADR 042).
const INLINE_MAX_PIXELS = 512 * 512;

/** A span per engine operation when tracing is on (ADR 036). */
function traced<T>(op: EngineOp, run: () => Promise<T>): Promise<T> {
  return tracing.on ? inSpan(`sharp ${op}`, { attributes: { "cutroom.engine.op": op } }, run) : run();
}

/**
 * A small pool of sharp processes, one per job in flight, kept warm between jobs (sharp loads once).
 * Idle processes beyond `maxIdle` are ended. Small resizes (`inlineMaxPixels`, 0: none) run in this process.
 */
export function createImageEngine(opts: { maxIdle?: number; inlineMaxPixels?: number } = {}): ImageEngine {
  const maxIdle = opts.maxIdle ?? 2;
  const inlineMaxPixels = opts.inlineMaxPixels ?? INLINE_MAX_PIXELS;
  const idle: ChildProcess[] = [];
  const all = new Set<ChildProcess>();
  let nextId = 1;

  const spawnChild = async (): Promise<ChildProcess> => {
    const child = fork(new URL("./engine-process.ts", import.meta.url), [], { execArgv: ["--import", "tsx"], serialization: "json", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    all.add(child);
    child.once("exit", () => {
      all.delete(child);
      const i = idle.indexOf(child);
      if (i >= 0) idle.splice(i, 1);
    });
    await new Promise<void>((resolve, reject) => {
      child.once("message", () => resolve());
      child.once("exit", (code, sig) => reject(new Error(`the image process exited at start (${sig ?? code})`)));
    });
    return child;
  };

  /** Runs one operation in an idle process (or a new one), in its span; an abort kills that process. */
  const call = <K extends EngineOp>(op: K, args: Parameters<Ops[K]>, signal: AbortSignal): Promise<Awaited<ReturnType<Ops[K]>>> =>
    traced(op, () => callChild(op, args, signal));

  const callChild = async <K extends EngineOp>(op: K, args: Parameters<Ops[K]>, signal: AbortSignal): Promise<Awaited<ReturnType<Ops[K]>>> => {
    signal.throwIfAborted();
    const child = idle.pop() ?? (await spawnChild());
    const id = nextId++;
    return new Promise<Awaited<ReturnType<Ops[K]>>>((resolve, reject) => {
      const cleanup = () => {
        signal.removeEventListener("abort", onAbort);
        child.off("message", onMessage);
        child.off("exit", onExit);
      };
      const onAbort = () => {
        cleanup();
        child.kill("SIGKILL");
        reject(signal.reason);
      };
      const onExit = (code: number | null, sig: NodeJS.Signals | null) => {
        cleanup();
        reject(new Error(`the image process died (${sig ?? `exit ${code}`})`));
      };
      const onMessage = (reply: Reply) => {
        if (reply.id !== id) return;
        cleanup();
        if (idle.length < maxIdle) idle.push(child);
        else child.kill();
        if (reply.ok) return resolve(reply.result as Awaited<ReturnType<Ops[K]>>);
        const { failure, code, message } = reply.error;
        reject(failure ? new JobFailure(code ?? "INVALID_MEDIA", message) : Object.assign(new Error(message), { code }));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.send({ id, op, args } satisfies EngineRequest<K>);
    });
  };

  return {
    // One `sharp resize` span whether the resize runs here or in a child.
    resize: (inputPath, outputPath, resizeOpts, signal) =>
      traced("resize", async () => {
        signal.throwIfAborted();
        // A thumbnail's whole resize costs less than the messages to a child and back (ADR 042).
        const small = inlineMaxPixels > 0 ? await resizeSmallImage(inputPath, outputPath, resizeOpts, inlineMaxPixels) : undefined;
        if (small) {
          signal.throwIfAborted();
          return small;
        }
        return callChild("resize", [inputPath, outputPath, resizeOpts], signal);
      }),
    resizeBytes: (input, resizeOpts, signal) =>
      traced("resize", async () => {
        signal.throwIfAborted();
        const small = inlineMaxPixels > 0 ? await resizeSmallBytes(input, resizeOpts, inlineMaxPixels) : undefined;
        signal.throwIfAborted();
        return small;
      }),
    inspectBorder: (inputPath, limits, signal) => call("inspectBorder", [inputPath, limits], signal),
    chromaKey: (inputPath, outputPath, opts, signal) => call("chromaKey", [inputPath, outputPath, opts], signal),
    toAlphaPng: (inputPath, outputPath, opts, signal) => call("toAlphaPng", [inputPath, outputPath, opts], signal),
    async warm() {
      if (idle.length === 0) idle.push(await spawnChild());
    },
    pids: () => [...all].flatMap((c) => (c.pid ? [c.pid] : [])),
    close() {
      for (const c of all) c.kill("SIGKILL");
      idle.length = 0;
    },
  };
}
