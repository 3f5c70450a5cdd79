import { runWorker } from "@cutroom/worker-runtime";
import { createAudioHandlers } from "./app.ts";

await runWorker({ name: "worker-audio", queue: "audio", handlers: createAudioHandlers() });
