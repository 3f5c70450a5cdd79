export { runWorker } from "./run-worker.ts";
export { startWorker, assertHandlers, type Worker, type WorkerConfig, type WorkerOptions } from "./worker.ts";
export { JobFailure, checkLimits, isJobFailure } from "./job-failure.ts";
export { WorkerEnv, readWorkerEnv } from "./env.ts";
export { serveWorkerHealth } from "./health.ts";
export { createReplicateProvider, type ModelProvider } from "./providers/replicate.ts";
export type { InputFile, JobContext, JobHandler, JobHandlers, JobOutput, ResultFile } from "./types.ts";
