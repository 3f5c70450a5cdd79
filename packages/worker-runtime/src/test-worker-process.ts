import { jobTypes } from "@cutroom/contracts";
import { connectNats, createLogger } from "@cutroom/runtime";
import { startWorker, type WorkerConfig } from "./worker.ts";

/*
 * An image worker in a process of its own, for tests that kill it as a crash would (SIGKILL): every
 * job it claims tells the parent its attempt over IPC, then hangs, so the process dies holding it.
 * Run as `node --import tsx test-worker-process.ts <nats url> <WorkerConfig as JSON>`.
 */

const [natsUrl, configJson] = process.argv.slice(2);
const log = createLogger("worker-doomed", "silent");
const hang = async (ctx: { job: { id: string; attempt: number } }) => {
  process.send?.({ job_id: ctx.job.id, attempt: ctx.job.attempt });
  await new Promise(() => {});
};
const handlers = Object.fromEntries(
  Object.entries(jobTypes)
    .filter(([, t]) => t.queue === "image")
    .map(([name]) => [name, hang]),
);
const config = JSON.parse(configJson!) as WorkerConfig;
await startWorker(await connectNats(natsUrl!, "worker-doomed", log), log, { name: "worker-doomed", queue: "image", handlers }, config);
