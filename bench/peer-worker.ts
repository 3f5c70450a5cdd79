// The peer's worker process: a BullMQ Worker doing what Cutroom's image.thumbnail does (read the
// input, fit it into width×height with sharp, write the output), reporting progress at the same
// two points (30 and 70) and updating the job's Postgres row at the end. The input is a file on
// the local disk and the output goes next to it: a simple stack's storage. It tells the bench
// when it is connected, and starts taking jobs when told to `run` (so a backlog can wait for it).
import { mkdirSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Worker, type Job } from "bullmq";
import postgres from "postgres";
import sharp from "sharp";
import { z } from "zod";

process.on("disconnect", () => process.exit(0));

const env = z
  .object({
    PEER_DATABASE_URL: z.string(),
    PEER_REDIS_PORT: z.coerce.number().int(),
    PEER_QUEUE: z.string(),
    PEER_FILES_DIR: z.string(),
    PEER_CONCURRENCY: z.coerce.number().int().positive(),
  })
  .parse(process.env);

type Format = "jpeg" | "png" | "webp" | "avif";
interface ThumbnailJob {
  user_id: string;
  input: { file_id: string; width: number; height: number; fit: "cover" | "contain" | "fill" | "inside" | "outside"; format: Format };
}
// As Cutroom's worker-image: thumbnails take no quality from the client.
const QUALITY = 75;
const extensions: Record<Format, string> = { jpeg: "jpg", png: "png", webp: "webp", avif: "avif" };

const sql = postgres(env.PEER_DATABASE_URL, { max: env.PEER_CONCURRENCY, onnotice: () => {} });
const outDir = join(env.PEER_FILES_DIR, "out");
mkdirSync(outDir, { recursive: true });

const thumbnail = async (job: Job<ThumbnailJob>) => {
  const { file_id, width, height, fit, format } = job.data.input;
  const bytes = await readFile(join(env.PEER_FILES_DIR, "in", file_id));
  await job.updateProgress(30);
  const { data, info } = await sharp(bytes, { failOn: "error" })
    .autoOrient()
    .resize({ width, height, fit })
    .toFormat(format, format === "png" ? {} : { quality: QUALITY })
    .toBuffer({ resolveWithObject: true });
  await job.updateProgress(70);
  const path = join(outDir, `${job.id}.${extensions[format]}`);
  await writeFile(path, data);
  const result = { path, width: info.width, height: info.height, format, size: info.size };
  await sql`update peer_jobs set status = 'succeeded', result = ${sql.json(result)}, started_at = ${new Date(job.processedOn ?? Date.now())}, completed_at = now() where id = ${job.id!}`;
  return result;
};

const worker = new Worker<ThumbnailJob>(env.PEER_QUEUE, thumbnail, { connection: { host: "127.0.0.1", port: env.PEER_REDIS_PORT, maxRetriesPerRequest: null }, concurrency: env.PEER_CONCURRENCY, autorun: false });
worker.on("failed", (job, err) => {
  // Only the last attempt fails the row; earlier ones go back to the queue.
  if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) void sql`update peer_jobs set status = 'failed', error = ${err.message}, completed_at = now() where id = ${job.id!}`;
});
await worker.waitUntilReady();
await sql`select 1`;
process.on("message", (m) => {
  if (m === "run") void worker.run();
});
process.send!({ ready: true }, undefined, undefined, (err) => err && process.exit(0));

process.once("SIGTERM", () => {
  void (async () => {
    await worker.close();
    await sql.end();
    process.exit(0);
  })();
});
