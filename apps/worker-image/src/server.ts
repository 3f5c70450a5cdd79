import { runWorker } from "@cutroom/worker-runtime";
import { createImageHandlers } from "./app.ts";
import { createImageEngine } from "./image-engine.ts";
import { serveModels } from "./models-rpc.ts";
import { createTextHandlers } from "./text-jobs.ts";

// sharp runs in child processes: a cancel or a shutdown kills them, which ends the work at once.
const engine = createImageEngine();
process.once("exit", () => engine.close());
await engine.warm();
// The image queue carries the text.* types too; this worker holds the language models, so it also answers prompt enhancement.
await runWorker({ name: "worker-image", queue: "image", handlers: { ...createImageHandlers(engine), ...createTextHandlers() }, serve: serveModels });
