import { fileURLToPath } from "node:url";
import { z } from "zod";
import { BaseEnv, DbEnv, envFlag, envOrigins, loadEnv, urlList } from "@cutroom/runtime";

export const Env = BaseEnv.extend(DbEnv.shape)
  .extend({
    /** Where bytes live: fs (a directory this service serves itself) or s3 (any S3-compatible store). */
    STORAGE_DRIVER: z.enum(["fs", "s3"]).default("fs"),
    /** fs driver: the directory objects are kept under (default: the repo's .data/storage). */
    STORAGE_DIR: z.string().default(fileURLToPath(new URL("../../../.data/storage", import.meta.url))),
    /** Port of the HTTP data plane: fs signed URLs (/storage/blob/*) and the gateway's upload stream (/storage/ingest/*). */
    STORAGE_PORT: z.coerce.number().int().min(0).max(65535).default(8001),
    /** Interface the data plane listens on; 0.0.0.0 in a container. */
    STORAGE_HOST: z.string().default("127.0.0.1"),
    /** Public base of fs signed URLs handed to clients; the gateway proxies /storage/* unchanged to STORAGE_PORT. */
    STORAGE_PUBLIC_URL: z.url().default("http://127.0.0.1:8000/storage").transform((u) => u.replace(/\/+$/, "")),
    /** Where the gateway and workers reach this data plane, inside the deployment: base of ingest URLs and of workers' signed URLs (never a gateway's). Replicas: all of them, comma-separated, the same list on each (URLs name the first; callers fail over). */
    STORAGE_INTERNAL_URL: z.string().default("http://127.0.0.1:8001").transform(urlList),
    /** Browser origins that may GET/PUT signed URLs (CORS), as the gateway's CORS_ORIGINS: * or a comma-separated list. */
    CORS_ORIGINS: envOrigins("*"),
    /** How long measuring an upload's media (ffprobe for video and audio) may take, in ms, before the file is refused as unreadable; a local file takes well under a second. */
    MEDIA_PROBE_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
    /** Seconds a resumable upload (chunked, tus) may take from init to complete, and a signed-URL upload to its confirm; then the sweeper deletes its bytes. */
    UPLOAD_EXPIRY_S: z.coerce.number().int().positive().default(24 * 60 * 60),
    /** How often, in seconds, this service sweeps expired uploads (every replica may: the sweep is idempotent); 0 turns it off. */
    UPLOAD_SWEEP_INTERVAL_S: z.coerce.number().int().min(0).default(10 * 60),
    /** POST /files/import: longest an import may take, connect to last byte, in seconds; then it fails with IMPORT_FETCH_FAILED (reason timeout). */
    FILES_IMPORT_TIMEOUT_S: z.coerce.number().int().positive().default(600),
    /** POST /files/import: most redirects followed (each one's addresses checked again). */
    FILES_IMPORT_MAX_REDIRECTS: z.coerce.number().int().min(0).max(20).default(5),
    /** For tests only: lets imports fetch from private, loopback and link-local addresses (refused in production). */
    FILES_IMPORT_ALLOW_PRIVATE: envFlag(false),
    /** HMAC key of signed URLs and ingest tokens; replicas must share it. Required in production; `npm start` keeps one in its data dir; otherwise random per start. */
    STORAGE_URL_SECRET: z.string().min(16).optional(),
    /** s3 driver: endpoint of an S3-compatible server (MinIO, R2, s3rver); unset means AWS itself. */
    S3_ENDPOINT: z.url().optional(),
    /** s3 driver: the endpoint signed into URLs handed to clients, when they reach S3 at another address than this service does (Docker: http://localhost:8333, not the service name); unset means S3_ENDPOINT. Workers get URLs for S3_ENDPOINT. */
    S3_PUBLIC_ENDPOINT: z.url().optional(),
    /** s3 driver: region the bucket is in. */
    S3_REGION: z.string().default("us-east-1"),
    /** s3 driver: the bucket every object goes into (required with STORAGE_DRIVER=s3). */
    S3_BUCKET: z.string().optional(),
    /** s3 driver: access key; unset means the SDK's default credential chain (instance role, ~/.aws). */
    S3_ACCESS_KEY_ID: z.string().optional(),
    /** s3 driver: the access key's secret. */
    S3_SECRET_ACCESS_KEY: z.string().optional(),
  })
  .refine((env) => env.STORAGE_DRIVER !== "s3" || env.S3_BUCKET, { path: ["S3_BUCKET"], message: "is required when STORAGE_DRIVER=s3" })
  // An open door to the internal network (SSRF) must never reach production.
  .refine((env) => !(env.NODE_ENV === "production" && env.FILES_IMPORT_ALLOW_PRIVATE), {
    path: ["FILES_IMPORT_ALLOW_PRIVATE"],
    message: "is for tests only and cannot be set when NODE_ENV=production",
  })
  // A random key per process breaks every URL at a restart and between replicas: fine for a test, never in production.
  .refine((env) => env.NODE_ENV !== "production" || env.STORAGE_URL_SECRET, {
    path: ["STORAGE_URL_SECRET"],
    message: "is required when NODE_ENV=production (e.g. `openssl rand -hex 32`, the same on every replica)",
  });
export type Env = z.output<typeof Env>;
export const readEnv = () => loadEnv(Env);
