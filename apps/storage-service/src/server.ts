import { randomBytes } from "node:crypto";
import { createDb, runMigrations } from "@cutroom/db";
import { connectNats, createLogger, announceReady, onShutdown, serveRpc, startMetricsListener, startTracing } from "@cutroom/runtime";
import { createIngestReceiver, createOutputReceiver, createSignedPutReceiver, createStorageHandlers, resumableDeps, type StorageDeps } from "./app.ts";
import { FsDriver } from "./drivers/fs-driver.ts";
import { S3Driver } from "./drivers/s3-driver.ts";
import { readEnv } from "./env.ts";
import { storageDbOptions } from "./files.ts";
import { createMediaProbe } from "./probe.ts";
import { blobRoutes, buildHttp, ingestRoutes, outputRoutes, uploadRoutes } from "./http.ts";
import { createUploadReceivers, sweepUploads } from "./resumable.ts";
import { createSigner } from "./signed-token.ts";

const env = readEnv();
const log = createLogger("storage-service", env.LOG_LEVEL);
const closeTracing = await startTracing(env, "storage-service", log);

await runMigrations(env.DATABASE_URL);
const { db, close: closeDb } = createDb(env.DATABASE_URL, storageDbOptions);
if (!env.STORAGE_URL_SECRET) log.warn("STORAGE_URL_SECRET is not set: signed URLs will not survive a restart or work across replicas");
const signer = createSigner(env.STORAGE_URL_SECRET ?? randomBytes(32).toString("hex"));
const driver =
  env.STORAGE_DRIVER === "s3"
    ? new S3Driver({ endpoint: env.S3_ENDPOINT, publicEndpoint: env.S3_PUBLIC_ENDPOINT, region: env.S3_REGION, bucket: env.S3_BUCKET!, accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY })
    : new FsDriver({ dir: env.STORAGE_DIR, publicUrl: env.STORAGE_PUBLIC_URL, internalUrl: env.STORAGE_INTERNAL_URL[0]!, signer });
const deps: StorageDeps = { db, driver, signer, internalUrl: env.STORAGE_INTERNAL_URL[0]!, probe: createMediaProbe({ timeoutMs: env.MEDIA_PROBE_TIMEOUT_MS }), uploadExpirySec: env.UPLOAD_EXPIRY_S };

deps.imports = { allowPrivate: env.FILES_IMPORT_ALLOW_PRIVATE, timeoutMs: env.FILES_IMPORT_TIMEOUT_S * 1000, maxRedirects: env.FILES_IMPORT_MAX_REDIRECTS };
const http = buildHttp(log, [ingestRoutes(createIngestReceiver(deps)), uploadRoutes(createUploadReceivers(resumableDeps(deps))), ...(driver instanceof FsDriver ? [blobRoutes(driver, createSignedPutReceiver(deps)), outputRoutes(createOutputReceiver(deps))] : [])], { corsOrigins: env.CORS_ORIGINS });
await http.listen({ port: env.STORAGE_PORT, host: env.STORAGE_HOST });
const nc = await connectNats(env, "storage-service", log);
const server = serveRpc(nc, "storage", createStorageHandlers(deps), log);

const sweep = () =>
  sweepUploads(resumableDeps(deps)).then(
    (n) => (n.uploads || n.tickets) && log.info(n, "swept abandoned uploads"),
    (err: unknown) => log.warn({ err }, "sweeping abandoned uploads failed"),
  );
const sweeper = env.UPLOAD_SWEEP_INTERVAL_S > 0 ? setInterval(sweep, env.UPLOAD_SWEEP_INTERVAL_S * 1000) : undefined;
sweeper?.unref();
if (sweeper) void sweep();

const closeMetrics = await startMetricsListener(env, log);
onShutdown(log, [closeMetrics, async () => clearInterval(sweeper), server.drain, () => http.close(), () => nc.drain(), closeDb, closeTracing]);
await announceReady(log, nc, { driver: driver.name, port: env.STORAGE_PORT });
