import { z } from "zod";

/** Every error code the public API can answer with, and the HTTP status it maps to. */
export const errorStatus = {
  BAD_REQUEST: 400,
  INVALID_INPUT: 422,
  INVALID_SEGMENT_CONFIG: 422,
  IMPORT_URL_REFUSED: 422,
  CHECKSUM_MISMATCH: 422,
  UNAUTHORIZED: 401,
  INVALID_CREDENTIALS: 401,
  INSUFFICIENT_CREDITS: 402,
  FORBIDDEN: 403,
  ACCOUNT_DISABLED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  EMAIL_TAKEN: 409,
  IDEMPOTENCY_CONFLICT: 409,
  INVALID_STATE: 409,
  // A worker over HTTP whose lease expired (another worker may hold the job now), or whose job ended meanwhile (ADR 040).
  LEASE_LOST: 409,
  PAYLOAD_TOO_LARGE: 413,
  STORAGE_QUOTA_EXCEEDED: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  PROVIDER_ERROR: 502,
  IMPORT_FETCH_FAILED: 502,
  SERVICE_UNAVAILABLE: 503,
  PROVIDER_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;
export const ErrorCode = z.enum(Object.keys(errorStatus) as [ErrorCode, ...ErrorCode[]]);

export const ErrorBody = z.object({
  code: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
  request_id: z.string(),
});
/** The one error envelope: `{"error": {code, message, details?, request_id}}`. */
export const ErrorEnvelope = z.object({ error: ErrorBody }).meta({ id: "Error" });
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;

/** An error as a value: a stable code, its HTTP status, a safe message and details. */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "AppError";
    this.status = errorStatus[code];
  }
}

export const isAppError = (err: unknown): err is AppError => err instanceof AppError;

/** Turns zod issues into `details.fields`: one entry per offending path. */
export function zodDetails(error: z.ZodError): Record<string, unknown> {
  return {
    fields: error.issues.map((issue) => ({
      path: issue.path.join(".") || "(root)",
      message: issue.message,
      code: issue.code,
    })),
  };
}
