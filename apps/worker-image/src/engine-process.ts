// The child side of image-engine.ts: runs one sharp job at a time for the worker, so that a
// canceled or stopping job is ended by killing this process (sharp's native threads ignore JS).
import { isJobFailure } from "@cutroom/worker-runtime";
import { resizeImage, type ResizeOptions } from "./resize.ts";

export interface EngineRequest {
  id: number;
  inputPath: string;
  outputPath: string;
  opts: ResizeOptions;
}

process.on("message", async (req: EngineRequest) => {
  try {
    const result = await resizeImage(req.inputPath, req.outputPath, req.opts);
    process.send!({ id: req.id, ok: true, result });
  } catch (err) {
    const e = err as Error & { code?: string };
    process.send!({ id: req.id, ok: false, error: { failure: isJobFailure(err), code: e.code, message: e.message } });
  }
});
// The worker is gone (even killed): so is this process, whatever sharp is doing.
process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
process.send!({ ready: true });
