import { availableParallelism, tmpdir } from "node:os";
import { BaseEnv, loadEnv } from "@cutroom/runtime";
import { z } from "zod";

export const WorkerEnv = BaseEnv.extend({
  /** Jobs this process runs at once; also the most JetStream messages it holds unacked. */
  WORKER_CONCURRENCY: z.coerce.number().int().positive().default(availableParallelism()),
  /** How long JetStream waits for an ack before redelivering; a running job heartbeats every third of it. */
  JOB_ACK_WAIT_MS: z.coerce.number().int().min(1000).default(30_000),
  /** Deliveries of one dispatch before the job is failed for good (the consumer's max_deliver). */
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  /** Delay before the first retry of a transiently failed job; each next one is 4× longer, at most 30 s. */
  JOB_RETRY_BASE_MS: z.coerce.number().int().min(100).max(30_000).default(1000),
  /** Where each job gets its own scratch directory, removed when the job ends. */
  WORKER_TMP_DIR: z.string().min(1).default(tmpdir()),
  /** Token for the Replicate model API; only job types that call a hosted model need it. */
  REPLICATE_API_TOKEN: z.string().optional(),
  /** Replicate API base URL: point it at a proxy or a compatible server. */
  REPLICATE_BASE_URL: z.url().default("https://api.replicate.com/v1"),
});
export type WorkerEnv = z.output<typeof WorkerEnv>;

export const readWorkerEnv = () => loadEnv(WorkerEnv);
