import { z } from "zod";

const Port = z.coerce.number().int().min(1).max(65535);

/**
 * What `npm start` reads. Every port and URL of the embedded stack follows from PORT (and HOST),
 * so a second checkout needs one setting: `PORT=9000 npm start`.
 */
export const StartEnv = z
  .object({
    /** The public API (gateway); the stack's other ports follow from it. */
    PORT: Port.default(8000),
    /** Interface the gateway binds; localhost by default, 0.0.0.0 to serve other machines. */
    HOST: z.string().default("127.0.0.1"),
    /** Base URL clients reach the gateway at (their signed URLs are built on it; workers go to storage directly); default http://<HOST or 127.0.0.1>:PORT. */
    CUTROOM_PUBLIC_URL: z.url().optional(),
    /** storage-service's data plane (fs signed URLs and streamed uploads); default PORT+1. */
    STORAGE_PORT: Port.optional(),
    /** The embedded nats-server; default PORT+2. */
    CUTROOM_NATS_PORT: Port.optional(),
    /** The embedded Postgres; default PORT+3. */
    CUTROOM_PG_PORT: Port.optional(),
    /** The model emulator (synthetic outputs), started when REPLICATE_API_TOKEN is unset; default PORT+4. */
    MODEL_EMULATOR_PORT: Port.optional(),
    /** Set: hosted models run on Replicate (only the workers get it) and the emulator is not started. */
    REPLICATE_API_TOKEN: z.string().trim().optional().transform((t) => t || undefined),
    /** Replicate's webhook signing key (GET /v1/webhooks/default/secret): with an explicit CUTROOM_PUBLIC_URL, Replicate's webhooks wake the workers instead of polling alone. */
    REPLICATE_WEBHOOK_SECRET: z.string().min(1).optional(),
    /** Where the stack keeps its Postgres cluster, JetStream store, files, logs and signing secret. */
    CUTROOM_DATA_DIR: z.string().optional(),
    /** Postgres server binaries (initdb, postgres); default the newest /usr/lib/postgresql/<v>/bin. */
    PG_BIN: z.string().optional(),
    /** pino level of every service; unset prints only the banner (logs go to <data dir>/logs). */
    LOG_LEVEL: z.string().optional(),
  })
  .transform((e) => {
    const host = e.HOST === "0.0.0.0" || e.HOST === "::" ? "127.0.0.1" : e.HOST;
    return {
      ...e,
      publicUrl: (e.CUTROOM_PUBLIC_URL ?? `http://${host.includes(":") ? `[${host}]` : host}:${e.PORT}`).replace(/\/+$/, ""),
      ports: {
        PORT: e.PORT,
        STORAGE_PORT: e.STORAGE_PORT ?? e.PORT + 1,
        CUTROOM_NATS_PORT: e.CUTROOM_NATS_PORT ?? e.PORT + 2,
        CUTROOM_PG_PORT: e.CUTROOM_PG_PORT ?? e.PORT + 3,
        // Only taken when the emulator runs.
        ...(e.REPLICATE_API_TOKEN ? {} : { MODEL_EMULATOR_PORT: e.MODEL_EMULATOR_PORT ?? e.PORT + 4 }),
      },
    };
  });
export type StartEnv = z.output<typeof StartEnv>;
