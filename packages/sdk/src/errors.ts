import type { ErrorCode } from "./types.ts";

/** An answer of the API in its error envelope `{"error": {code, message, details?, request_id}}`, or a refused WebSocket. */
export class CutroomError extends Error {
  override readonly name = "CutroomError";
  readonly status: number;
  readonly code: ErrorCode | (string & {});
  readonly details: Record<string, unknown> | undefined;
  /** The gateway's id of the request, to quote when asking an operator about it; empty when the server gave none. */
  readonly requestId: string;

  constructor(init: { status: number; code: string; message: string; details?: Record<string, unknown>; requestId?: string }) {
    super(init.message);
    this.status = init.status;
    this.code = init.code;
    this.details = init.details;
    this.requestId = init.requestId ?? "";
  }
}

/** The server could not be reached, or the connection broke before an answer: nothing tells whether the request took effect. */
export class CutroomNetworkError extends Error {
  override readonly name = "CutroomNetworkError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const isCutroomError = (err: unknown): err is CutroomError => err instanceof CutroomError;

/** An error from a response that is not 2xx: the envelope's fields, or the status alone when the body is not one. */
export async function errorFromResponse(res: Response): Promise<CutroomError> {
  const text = await res.text().catch(() => "");
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown; request_id?: unknown } } | undefined)?.error;
  const requestId = typeof error?.request_id === "string" ? error.request_id : (res.headers.get("x-request-id") ?? "");
  if (error && typeof error.code === "string" && typeof error.message === "string") {
    const details = error.details && typeof error.details === "object" ? (error.details as Record<string, unknown>) : undefined;
    return new CutroomError({ status: res.status, code: error.code, message: error.message, details, requestId });
  }
  return new CutroomError({ status: res.status, code: `HTTP_${res.status}`, message: text.slice(0, 200) || res.statusText || `HTTP ${res.status}`, requestId });
}

// The statuses of the codes a refused WebSocket names in its close reason (`CODE: message`).
const wsCodeStatus: Record<string, number> = { UNAUTHORIZED: 401, ACCOUNT_DISABLED: 403, FORBIDDEN: 403, NOT_FOUND: 404, RATE_LIMITED: 429, SERVICE_UNAVAILABLE: 503, INTERNAL: 500 };

/** A WebSocket close reason `CODE: message` as an error. */
export function errorFromCloseReason(reason: string): CutroomError {
  const match = /^([A-Z_]+): ?(.*)$/s.exec(reason);
  const code = match?.[1] ?? "WEBSOCKET_CLOSED";
  return new CutroomError({ status: wsCodeStatus[code] ?? 400, code, message: match?.[2] || reason || "the WebSocket was closed" });
}
