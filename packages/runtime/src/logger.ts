import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger };

export const REDACTED = "[redacted]";

// Credentials that travel in URLs: access tokens of WebSocket/SSE clients, and the signed tokens
// that are the whole authority of a storage URL. A log line must never be enough to replay them.
const SECRET_PARAMS = /([?&](?:access_token|refresh_token|token|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&#\s"']*/gi;
const SIGNED_PATHS = /(\/storage\/(?:blob|ingest)\/)[^/?#\s"']+/gi;

/** The URL (or any text holding URLs) with its tokens replaced by a placeholder. */
export function redactUrl(text: string): string {
  return text.replace(SECRET_PARAMS, `$1${REDACTED}`).replace(SIGNED_PATHS, `$1${REDACTED}`);
}

interface RequestLike {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

// Fastify's own request serializer, minus the tokens; ours wins because Fastify merges the logger's serializers last.
const serializers = {
  req: (req: RequestLike) => ({
    method: req.method,
    url: req.url === undefined ? undefined : redactUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  }),
  err: (err: unknown) => {
    const out = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
    if (out === null || typeof out !== "object") return out;
    for (const field of ["message", "stack"]) if (typeof out[field] === "string") out[field] = redactUrl(out[field] as string);
    return out;
  },
};

/**
 * JSON logs on stdout (or `destination`), one `service` field on every line. Every Fastify app and
 * service logs through this, so tokens are scrubbed here once: URLs in requests, errors and messages,
 * and credentials under the usual field names.
 */
export function createLogger(service: string, level = "info", destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers,
      redact: {
        paths: [
          "authorization",
          "headers.authorization",
          "headers.cookie",
          "req.headers.authorization",
          "req.headers.cookie",
          "*.headers.authorization",
          "access_token",
          "refresh_token",
          "password",
        ],
        censor: REDACTED,
      },
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++) if (typeof args[i] === "string") args[i] = redactUrl(args[i] as string);
          method.apply(this, args as Parameters<typeof method>);
        },
      },
      formatters: {
        // URLs logged under any field name (a signed upload_url, a proxied target) are scrubbed too.
        log: (object) => scrubUrls(object) as Record<string, unknown>,
      },
    },
    destination,
  );
}

// Plain data only: requests, replies and errors are left to their serializers.
function scrubUrls(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return redactUrl(value);
  if (depth > 4 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => scrubUrls(v, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrubUrls(v, depth + 1);
  return out;
}
