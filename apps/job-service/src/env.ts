import { BaseEnv, DbEnv, loadEnv } from "@cutroom/runtime";
import { ModelProviderName } from "@cutroom/models";
import { z } from "zod";
import type { JobControlSettings } from "./job-control.ts";

const ms = (fallback: number) => z.coerce.number().int().positive().default(fallback);

export const Env = BaseEnv.extend(DbEnv.shape).extend({
  /** How often each replica compares Postgres (the truth) with what the broker holds. */
  RECONCILE_INTERVAL_MS: ms(5000),
  /** How long a dispatched job may go unclaimed, or a dead worker's job unreclaimed, before it is re-dispatched (if the broker lost its message). */
  REDISPATCH_AFTER_MS: ms(30_000),
  /** How long a worker holds a job after its claim or its last event; past that another worker may take it over. */
  JOB_LEASE_MS: ms(60_000),
  /** How old a reservation without a job must be before the reconciler releases it (a job-service of before ADR 019 reserved, then inserted). */
  ORPHAN_RESERVATION_GRACE_MS: ms(60_000),
  /** How often a worker queue's waiting jobs hear their changed places (ADR 037): at most one queued event per job per interval, only after waiting that long; 0: only GET shows places. */
  QUEUE_PLACES_INTERVAL_MS: z.coerce.number().int().nonnegative().default(2000),
  /** How long, in ms, the job events arriving together wait for more before they are written to the jobs' rows as one batch (0: only those of one event-loop turn). Watchers get events from the broker, not from the rows; a row shows an event this much later. */
  JOB_EVENTS_BATCH_MS: z.coerce.number().int().min(0).max(1000).default(20),
  /** The most job creations committed in one transaction (group commit, ADR 027): more amortises a commit over more jobs, fewer bounds one batch's time. */
  JOB_CREATE_BATCH_MAX: z.coerce.number().int().min(1).max(1000).default(64),
  /** The delay before a failed job's first retry; each next one doubles (ADR 039). */
  JOB_RETRY_BASE_MS: ms(1000),
  /** The longest delay between two attempts. */
  JOB_RETRY_MAX_MS: ms(60_000),
  /** Up to this fraction of a retry's delay is added at random, so many jobs' retries spread out. */
  JOB_RETRY_JITTER: z.coerce.number().min(0).max(1).default(0.2),
  /** Attempts in all for every job type; unset: each type's own (the job-type registry). */
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).optional(),
  /** How much sooner a high job (later a low one) is served than a normal one of the same age: a waiting job is never passed by jobs this much younger. */
  JOB_PRIORITY_AGING_MS: ms(60_000),
  /** Which provider the workers run hosted models with: replicate, emulator or none (npm start sets it). Unset: decided from REPLICATE_API_TOKEN and MODEL_EMULATOR_URL as the workers decide. */
  MODEL_PROVIDER: ModelProviderName.optional(),
  /** Set when the workers use Replicate; job-service only looks whether it is set. */
  REPLICATE_API_TOKEN: z.string().optional(),
  /** Set when the workers use the model emulator; job-service only looks whether it is set. */
  MODEL_EMULATOR_URL: z.string().optional(),
  /** The operator's models catalog, the same file the workers read: which qualities exist and which run on local engines. */
  MODEL_CATALOG_FILE: z.string().min(1).optional(),
  /** A directory of the operator's pipeline flavors, `<type>/<flavor>.json` (docs/PIPELINES.md), read at start beside the built-in ones; unset: built-in flavors only. */
  PIPELINE_FLAVORS_DIR: z.string().min(1).optional(),
});
export type Env = ReturnType<typeof Env.parse>;
export const readEnv = () => loadEnv(Env);

/** Every timing the lifecycle depends on, in one place so tests can make them short. */
export interface Timing {
  reconcileIntervalMs: number;
  redispatchAfterMs: number;
  leaseMs: number;
  /** A new job's own first dispatch gets this long before the reconciler does it instead. */
  dispatchGraceMs: number;
  /** A reservation with no job is released once it is this old. */
  orphanGraceMs: number;
  /** How often queued jobs' changed places in their worker queue are told (ADR 037); 0 or absent: never. */
  queuePlacesIntervalMs?: number;
  /** Retries and priorities (ADR 039); absent: defaultJobControlSettings. */
  control?: JobControlSettings;
  /** How long arriving job events wait for more before a batch is written (ADR 048); 0 or absent: one event-loop turn. */
  eventsBatchMs?: number;
}

export const timingFrom = (env: Env): Timing => ({
  reconcileIntervalMs: env.RECONCILE_INTERVAL_MS,
  redispatchAfterMs: env.REDISPATCH_AFTER_MS,
  leaseMs: env.JOB_LEASE_MS,
  dispatchGraceMs: 3000,
  orphanGraceMs: env.ORPHAN_RESERVATION_GRACE_MS,
  queuePlacesIntervalMs: env.QUEUE_PLACES_INTERVAL_MS,
  eventsBatchMs: env.JOB_EVENTS_BATCH_MS,
  control: {
    retry: { baseMs: env.JOB_RETRY_BASE_MS, maxMs: env.JOB_RETRY_MAX_MS, jitter: env.JOB_RETRY_JITTER, ...(env.JOB_MAX_ATTEMPTS ? { maxAttempts: env.JOB_MAX_ATTEMPTS } : {}) },
    agingMs: env.JOB_PRIORITY_AGING_MS,
  },
});
