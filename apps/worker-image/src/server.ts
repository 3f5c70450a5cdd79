import { runWorker } from "@cutroom/worker-runtime";
import { createImageHandlers } from "./app.ts";

await runWorker({ name: "worker-image", queue: "image", handlers: createImageHandlers() });
