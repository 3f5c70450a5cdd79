import { runWorker } from "@cutroom/worker-runtime";
import { createImageHandlers } from "./app.ts";
import { createImageEngine } from "./image-engine.ts";

// sharp runs in child processes: a cancel or a shutdown kills them, which ends the work at once.
const engine = createImageEngine();
process.once("exit", () => engine.close());
await engine.warm();
await runWorker({ name: "worker-image", queue: "image", handlers: createImageHandlers(engine) });
