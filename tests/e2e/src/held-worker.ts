import { jobTypes } from "@cutroom/contracts";
import { runWorker } from "@cutroom/worker-runtime";

/*
 * A worker-image process as runWorker runs one (its registry heartbeats, its drain and resume), whose
 * jobs wait for the test: each job it starts tells the parent over IPC, then waits for
 * `{release: <job id>}` before it succeeds. Run as `node --import tsx held-worker.ts` with the worker's env.
 */

const waiting = new Map<string, () => void>();
process.on("message", (m: { release?: string }) => {
  if (m.release) waiting.get(m.release)?.();
});
const held = async (ctx: { job: { id: string } }) => {
  const released = new Promise<void>((resolve) => waiting.set(ctx.job.id, resolve));
  process.send?.({ started: ctx.job.id });
  await released;
  waiting.delete(ctx.job.id);
  return { files: [] };
};
const handlers = Object.fromEntries(
  Object.entries(jobTypes)
    .filter(([, t]) => t.queue === "image")
    .map(([name]) => [name, held]),
);
await runWorker({ name: "worker-image", queue: "image", handlers });
