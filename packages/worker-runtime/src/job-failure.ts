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
