// The child side of image-engine.ts: runs one sharp job at a time for the worker, so that a
// canceled or stopping job is ended by killing this process (sharp's native threads ignore JS).
import { isJobFailure } from "@cutroom/worker-runtime";
import { chromaKey, inspectBorder, toAlphaPng } from "./chroma-key.ts";
import { resizeImage } from "./resize.ts";

/** The sharp operations the engine runs, by name: each takes JSON arguments and returns JSON. */
export const engineOps = { resize: resizeImage, inspectBorder, chromaKey, toAlphaPng };
export type EngineOp = keyof typeof engineOps;

export interface EngineRequest<K extends EngineOp = EngineOp> {
  id: number;
  op: K;
  args: Parameters<(typeof engineOps)[K]>;
}

process.on("message", async (req: EngineRequest) => {
  try {
    const result = await (engineOps[req.op] as (...args: unknown[]) => Promise<unknown>)(...req.args);
    process.send!({ id: req.id, ok: true, result });
  } catch (err) {
    const e = err as Error & { code?: string };
    process.send!({ id: req.id, ok: false, error: { failure: isJobFailure(err), code: e.code, message: e.message } });
  }
});
// The worker is gone (even killed): so is this process, whatever sharp is doing.
process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
process.send!({ ready: true });
