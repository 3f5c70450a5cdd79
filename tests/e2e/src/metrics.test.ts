import { readFileSync } from "node:fs";
import { freePort, type InstanceName } from "@cutroom/devstack";
import WebSocket from "ws";
import { describe, expect, it } from "vitest";
import { jobHelpers } from "./jobs.ts";
import { useStack } from "./stack.ts";

// METRICS_PORT is the gateway's; every other process of the stack gets a free port of its own (ServiceSet.env).
const metricsPort = await freePort();
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "model-emulator", "gateway"],
  env: { METRICS_PORT: String(metricsPort) },
});
const { cancelMidPrediction, runToSuccess, userWithImage } = jobHelpers(ctx);
const scraped: InstanceName[] = ["gateway", "auth-service", "billing-service", "storage-service", "job-service", "worker-image"];

/** A process's /metrics text, from its own unauthenticated listener. */
async function scrape(name: InstanceName): Promise<string> {
  const port = name === "gateway" ? metricsPort : ctx.stack.services.env(name).METRICS_PORT;
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The sum of a metric's samples whose labels include `labels`; undefined when it has none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/** Each metric's change from `before` to `after`, absent counting as 0. */
const moved = (before: string, after: string, name: string, labels: Record<string, string> = {}) => (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("metrics of a running stack", () => {
  it("counts a job run through the stack: created, started, finished, its durations, its credits, the queue and the worker", async () => {
    const u = await userWithImage();
    const [jobsBefore, workerBefore] = await Promise.all([scrape("job-service"), scrape("worker-image")]);
    await runToSuccess(u.token, "image.resize", { file_id: u.fileId, width: 16 });
    // job-service records the ending, then publishes it: once the watcher saw the end, it is counted.
    const [jobs, worker] = await Promise.all([scrape("job-service"), scrape("worker-image")]);
    const type = { type: "image.resize" };
    expect(moved(jobsBefore, jobs, "cutroom_jobs_created_total", type)).toBe(1);
    expect(moved(jobsBefore, jobs, "cutroom_jobs_started_total", type)).toBe(1);
    expect(moved(jobsBefore, jobs, "cutroom_jobs_finished_total", { ...type, status: "succeeded" })).toBe(1);
    expect(moved(jobsBefore, jobs, "cutroom_job_duration_seconds_count", { ...type, status: "succeeded" })).toBe(1);
    expect(moved(jobsBefore, jobs, "cutroom_job_queue_wait_seconds_count", type)).toBe(1);
    expect(moved(jobsBefore, jobs, "cutroom_credits_reserved_total", type)).toBe(1);
    expect(moved(jobsBefore, jobs, "cutroom_credits_captured_total", type)).toBe(1);
    expect(sample(jobs, "cutroom_queue_depth", { queue: "image" })).toBe(0);
    expect(sample(worker, "cutroom_worker_jobs_in_flight", { worker: "worker-image" })).toBe(0);
    expect(sample(worker, "cutroom_worker_concurrency", { worker: "worker-image" })).toBeGreaterThan(0);
    // Each process keeps its part: the worker created no job.
    expect(moved(workerBefore, worker, "cutroom_jobs_created_total", type)).toBe(0);
  });

  it("counts a model run at the provider with its latency and cost", async () => {
    const u = await ctx.api.signUp();
    const before = await scrape("worker-image");
    const jobsBefore = await scrape("job-service");
    await runToSuccess(u.token, "image.generate", { prompt: "a lighthouse at dusk", num_images: 1 });
    const after = await scrape("worker-image");
    const provider = { provider: "emulator", outcome: "succeeded" };
    expect(moved(before, after, "cutroom_provider_calls_total", provider)).toBe(1);
    expect(moved(before, after, "cutroom_provider_call_duration_seconds_count", { provider: "emulator" })).toBe(1);
    // The emulator charges nothing, and says so.
    expect(sample(after, "cutroom_provider_cost_usd_total", { provider: "emulator" })).toBe(0);

    const jobs = await scrape("job-service");
    expect(moved(jobsBefore, jobs, "cutroom_jobs_finished_total", { type: "image.generate", status: "succeeded" })).toBe(1);
  });

  it("counts a job canceled mid-prediction: its end, its credits given back, the provider call canceled", async () => {
    const u = await ctx.api.signUp();
    const [before, workerBefore] = await Promise.all([scrape("job-service"), scrape("worker-image")]);
    await cancelMidPrediction(u.token, "image.generate", { prompt: "a lighthouse at dusk", num_images: 1 });
    const after = await scrape("job-service");
    const type = { type: "image.generate" };
    expect(moved(before, after, "cutroom_jobs_finished_total", { ...type, status: "canceled" })).toBe(1);
    expect(moved(before, after, "cutroom_job_duration_seconds_count", { ...type, status: "canceled" })).toBe(1);
    const reserved = moved(before, after, "cutroom_credits_reserved_total", type);
    expect(reserved).toBeGreaterThan(0);
    expect(moved(before, after, "cutroom_credits_released_total", type)).toBe(reserved);
    expect(moved(before, after, "cutroom_credits_captured_total", type)).toBe(0);
    // The worker hears of the cancel after the watcher does: its count follows.
    const canceledCalls = async () => moved(workerBefore, await scrape("worker-image"), "cutroom_provider_calls_total", { provider: "emulator", outcome: "canceled" });
    expect(await until(canceledCalls, (n) => n === 1)).toBe(1);
  });

  it("counts open WebSocket connections on the gateway, and forgets them once closed", async () => {
    const u = await ctx.api.signUp();
    const open = async () => sample(await scrape("gateway"), "cutroom_realtime_connections", { protocol: "websocket" }) ?? 0;
    const start = await open();
    const ws = new WebSocket(`${ctx.stack.url.replace(/^http/, "ws")}/ws`, { headers: { authorization: `Bearer ${u.token}` } });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    expect(await until(open, (n) => n === start + 1)).toBe(start + 1);
    ws.close();
    expect(await until(open, (n) => n === start)).toBe(start);
  });

  it("serves exactly the cutroom_ metrics docs/METRICS.md lists, across the stack's processes", async () => {
    const served = new Set<string>();
    for (const text of await Promise.all(scraped.map(scrape))) for (const m of text.matchAll(/^# TYPE (cutroom_[a-z_]+) /gm)) served.add(m[1]!);
    const doc = readFileSync(new URL("../../../docs/METRICS.md", import.meta.url), "utf8");
    const documented = new Set([...doc.matchAll(/^\| `(cutroom_[a-z_]+)` \|/gm)].map((m) => m[1]!));
    expect([...served].sort()).toEqual([...documented].sort());
  });
});
