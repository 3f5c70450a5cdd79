import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jobTypes, type Caller } from "@cutroom/contracts";
import { createRpcClient, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import { createMigratedDb, silentLogger, startStack, startTestNats } from "@cutroom/testing";
import { expect } from "vitest";
import type { JobContext, JobOutput } from "./types.ts";
import { startWorker, type Worker, type WorkerConfig } from "./worker.ts";

/*
 * What the worker tests share: a real job-, storage- and billing-service on a database and
 * nats-server of their own, an image worker whose every type runs the test's handler, and a
 * user with credits who has uploaded a pixel.
 */

export interface WorkerRig {
  nats: Awaited<ReturnType<typeof startTestNats>>;
  nc: NatsConnection;
  client: RpcClient;
  worker: Worker;
  stop(): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: each test's handler takes the input it expects
type Handler = (ctx: JobContext<any>) => Promise<JobOutput | unknown>;

/** Every type of the image queue, whichever types it gains: startWorker refuses a queue with one unhandled. */
export const imageHandlers = (handler: Handler) => Object.fromEntries(Object.entries(jobTypes).filter(([, t]) => t.queue === "image").map(([name]) => [name, handler]));

/** Starts the services and the worker; sets config.tmpDir to a fresh folder that stop() removes. */
export async function startWorkerRig(names: { db: string; tmpPrefix: string; worker: string }, config: WorkerConfig, handler: Handler): Promise<WorkerRig> {
  config.tmpDir = await mkdtemp(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), names.tmpPrefix));
  const [db, nats] = await Promise.all([createMigratedDb(names.db), startTestNats()]);
  // job-service decides retries (ADR 039): the rig's attempts and backoff are the config's.
  const env = { JOB_MAX_ATTEMPTS: String(config.maxAttempts), JOB_RETRY_BASE_MS: String(config.retryBaseMs) };
  const services = await startStack({ databaseUrl: db.url, natsUrl: nats.url, apps: ["billing-service", "storage-service", "job-service"], parentDir: process.env.CUTROOM_TEST_DIR, env });
  const nc = await nats.connect();
  const client = createRpcClient(nc, { timeoutMs: 5000 });
  const worker = await startWorker(await nats.connect(), silentLogger(), { name: names.worker, queue: "image", handlers: imageHandlers(handler) }, config);
  const stop = async () => {
    await worker.stop({ graceMs: 0 });
    await services.stop();
    await nats.stop();
    await db.close();
    await rm(config.tmpDir, { recursive: true, force: true });
  };
  return { nats, nc, client, worker, stop };
}

/** A 1×1 PNG: image jobs need an input whose picture size storage could measure. */
export const PIXEL = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAADElEQVQImWP4//8/AAX+Av5Y8msOAAAAAElFTkSuQmCC", "base64");

/** A new user with `credits` credits uploads a pixel (createUpload → PUT → confirmUpload). */
export async function pixelOwner(client: RpcClient, credits: number): Promise<{ owner: Caller; fileId: string }> {
  const owner: Caller = { user_id: randomUUID(), role: "user", tier: "free" };
  await client.call("billing", "openAccount", { user_id: owner.user_id, credits });
  const ticket = await client.call("storage", "createUpload", { filename: "pixel.png", content_type: "image/png", size: PIXEL.length, max_bytes: 1_000_000 }, { caller: owner });
  const put = await fetch(ticket.upload_url, { method: ticket.method, headers: ticket.headers, body: PIXEL });
  expect(put.status).toBe(200);
  await client.call("storage", "confirmUpload", { file_id: ticket.file_id }, { caller: owner });
  return { owner, fileId: ticket.file_id };
}
