import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { jobsCreated, metricsRegistry, readWorkerInFlight, serveMetrics } from "./metrics.ts";

/** The metric names docs/METRICS.md lists in its table. */
export function documentedMetrics(): string[] {
  const doc = readFileSync(new URL("../../../docs/METRICS.md", import.meta.url), "utf8");
  return [...doc.matchAll(/^\| `(cutroom_[a-z_]+)` \|/gm)].map((m) => m[1]!);
}

describe("the process's metrics", () => {
  it("are each listed in docs/METRICS.md", async () => {
    const registered = (await metricsRegistry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith("cutroom_"));
    expect(registered.length).toBeGreaterThan(10);
    expect(documentedMetrics()).toEqual(expect.arrayContaining(registered));
  });

  it("are served on the metrics listener, gauges read at the scrape, and nothing else there", async () => {
    let inFlight = 3;
    const stop = readWorkerInFlight("worker-test", () => inFlight);
    jobsCreated.inc({ type: "image.resize" });
    const listener = await serveMetrics({ port: 0, host: "127.0.0.1" });
    try {
      const scrape = async () => (await fetch(`http://127.0.0.1:${listener.port}/metrics`)).text();
      expect(await scrape()).toMatch(/^cutroom_worker_jobs_in_flight\{worker="worker-test"\} 3$/m);
      inFlight = 1;
      const text = await scrape();
      expect(text).toMatch(/^cutroom_worker_jobs_in_flight\{worker="worker-test"\} 1$/m);
      expect(text).toMatch(/^cutroom_jobs_created_total\{type="image.resize"\} [1-9]/m);
      expect(text).toMatch(/^process_cpu_seconds_total /m);
      expect((await fetch(`http://127.0.0.1:${listener.port}/`)).status).toBe(404);
    } finally {
      stop();
      await listener.close();
    }
  });
});
