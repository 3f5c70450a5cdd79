import { z } from "zod";

/** Variables every process reads. Defaults serve the embedded stack that `npm start` brings up. */
export const BaseEnv = z.object({
  /** production refuses unsafe defaults (a random signing secret, test payments); development is the embedded stack. */
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  /** NATS server; the embedded stack runs `nats-server -js` here (PORT+2). */
  NATS_URL: z.string().default("nats://127.0.0.1:8002"),
  /** This app's NATS user (its permissions: packages/contracts/src/nats-permissions.ts); unset connects without auth. npm start sets it. */
  NATS_USER: z.string().min(1).optional(),
  /** NATS_USER's password. */
  NATS_PASSWORD: z.string().min(1).optional(),
  /** pino level: trace, debug, info, warn, error, fatal, silent. */
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Copies of each JetStream stream: 1 on one machine, 3 on the production cluster (infra/nats). */
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** How long a caller waits for another service before answering 503. */
  RPC_TIMEOUT_MS: z.coerce.number().int().positive().default(5000),
  /** A listener serving this process's Prometheus /metrics without authentication (docs/METRICS.md); unset: none (the gateway still serves them to admins on its API port). */
  METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  /** Interface of that listener: keep it private. */
  METRICS_HOST: z.string().default("127.0.0.1"),
  /** An OTLP/HTTP collector (e.g. http://127.0.0.1:4318): spans go to its /v1/traces as JSON (ADR 036); unset with the next one: tracing off, at no cost. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  /** The full traces URL, taken as is instead of OTEL_EXPORTER_OTLP_ENDPOINT's /v1/traces. */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  /** The service.name of this process's spans; unset: the app's name (gateway, job-service, worker-image...). */
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  /** How long finished spans wait to go out in one export, in ms. */
  OTEL_BSP_SCHEDULE_DELAY: z.coerce.number().int().positive().default(5000),
});

export const DbEnv = z.object({
  /** The one Postgres database; each service keeps to its own schema in it. The embedded stack's is at PORT+3. */
  DATABASE_URL: z.string().default("postgres://postgres@127.0.0.1:8003/cutroom"),
});

/** A yes/no variable: true/false, 1/0 or yes/no (z.coerce.boolean would read "false" as true). */
export const envFlag = (fallback: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(["true", "false", "1", "0", "yes", "no"]))
    .transform((v) => v === "true" || v === "1" || v === "yes")
    .default(fallback);

const isOrigin = (o: string) => URL.canParse(o) && new URL(o).origin === o;

/**
 * Browser origins CORS lets in: `*` for any (the API takes bearer tokens, never cookies), or a
 * comma-separated list of origins such as `https://app.example.com,http://localhost:5173`.
 */
export const envOrigins = (fallback: string) =>
  z
    .string()
    .trim()
    .default(fallback)
    .transform((v, ctx): "*" | string[] => {
      if (v === "*") return "*";
      const origins = v.split(",").map((o) => o.trim().replace(/\/+$/, "")).filter(Boolean);
      for (const o of origins) if (!isOrigin(o)) ctx.addIssue({ code: "custom", message: `${o} is not an origin (scheme://host[:port]) nor *` });
      return origins;
    });

/** Parses the environment once at start; exits naming each bad variable. */
export function loadEnv<S extends z.ZodObject>(schema: S, source: NodeJS.ProcessEnv = process.env): z.output<S> {
  const parsed = schema.safeParse(source);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) {
    console.error(`config: ${issue.path.join(".")}: ${issue.message}`);
  }
  process.exit(1);
}
