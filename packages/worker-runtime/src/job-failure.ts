import { describeExceeded, exceededLimit, type JobLimits, type JobWork } from "@cutroom/contracts";

/**
 * A job that can never succeed as asked (bad media, unusable input): the job fails at once
 * with `code` and `message` shown to its owner, and the message is never redelivered.
 * Any other error is treated as transient and retried.
 */
export class JobFailure extends Error {
  readonly retryable = false;
  constructor(
    /** Stable and upper-case, e.g. INVALID_MEDIA, INVALID_INPUT, INPUT_UNAVAILABLE. */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "JobFailure";
  }
}

export const isJobFailure = (err: unknown): err is JobFailure => err instanceof JobFailure;

/**
 * A failure another attempt may cure (a provider's outage): retried like any error, but when the
 * attempts run out the job fails with this `code` and `message` rather than WORKER_ERROR.
 */
export class RetryableFailure extends Error {
  readonly retryable = true;
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "RetryableFailure";
  }
}

/**
 * Refuses a job whose real input is past its limits (LIMIT_EXCEEDED, never retried), whatever was
 * checked at enqueue: call it with what the worker measured, before the heavy work starts.
 */
export function checkLimits(limits: JobLimits, measured: Partial<JobWork>): void {
  const over = exceededLimit(measured, limits);
  if (over) throw new JobFailure("LIMIT_EXCEEDED", describeExceeded(over));
}
