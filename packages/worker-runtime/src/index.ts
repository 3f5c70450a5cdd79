export { runWorker } from "./run-worker.ts";
export { startWorker, assertHandlers, type Worker, type WorkerConfig, type WorkerOptions } from "./worker.ts";
export { JobFailure, RetryableFailure, checkLimits, isJobFailure } from "./job-failure.ts";
export { WorkerEnv, readWorkerEnv } from "./env.ts";
export { serveWorkerHealth } from "./health.ts";
export { createReplicateProvider, outputUrls, ProviderError, type ModelProvider, type Prediction, type PredictionWakeups } from "./providers/replicate.ts";
export { createJobModels, noModels, totalCostUsd, type JobModels, type ModelFile, type ModelRunRequest, type ModelRunResult, type ModelService, type ProviderRecord } from "./models.ts";
export { createModelService } from "./model-service.ts";
export type { InputFile, JobContext, JobHandler, JobHandlers, JobOutput, ResultFile } from "./types.ts";
