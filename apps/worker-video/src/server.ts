import { runWorker } from "@cutroom/worker-runtime";
import { createVideoHandlers } from "./app.ts";

await runWorker({ name: "worker-video", queue: "video", handlers: createVideoHandlers() });
