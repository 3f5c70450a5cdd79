/** NATS subject names: one place, dotted lower case. */
export const subjects = {
  rpc: (service: string, method: string) => `svc.${service}.${method}`,
  /** Every process of a service or worker answers here (no queue group), so one request counts the replicas. */
  instanceHealth: (service: string) => `svc.${service}.health.instances`,
  jobRun: (queue: string, type: string) => `jobs.run.${queue}.${type}`,
  jobRunQueue: (queue: string) => `jobs.run.${queue}.>`,
  jobEvents: (jobId: string) => `jobs.events.${jobId}`,
  jobEventsAll: "jobs.events.>",
  /** A pipeline's events (ADR 026), in JOB_EVENTS beside the jobs' so one consumer follows both. */
  pipelineEvents: (pipelineId: string) => `pipelines.events.${pipelineId}`,
  pipelineEventsAll: "pipelines.events.>",
  jobCancel: (jobId: string) => `jobs.cancel.${jobId}`,
  jobCancelAll: "jobs.cancel.>",
  /** A model provider's webhook for a prediction, relayed by the gateway (core NATS): wakes the worker waiting on it. */
  modelWebhook: (predictionId: string) => `models.webhook.${predictionId}`,
} as const;

export const streams = {
  jobs: { name: "JOBS", subjects: ["jobs.run.>"] },
  jobEvents: { name: "JOB_EVENTS", subjects: ["jobs.events.>", "pipelines.events.>"] },
} as const;

/** Durable consumers on JOBS: one per worker queue, shared by that worker's replicas. */
export const consumers = {
  worker: (queue: string) => `worker-${queue}`,
} as const;

export const serviceNames = ["auth", "job", "storage", "billing"] as const;
export type ServiceName = (typeof serviceNames)[number];
export const workerNames = ["worker-image", "worker-video", "worker-audio"] as const;
export type WorkerName = (typeof workerNames)[number];
