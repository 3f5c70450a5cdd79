import { describe, expect, it } from "vitest";
import { workerInstance, workerRegistryId, type WorkerHeartbeat } from "./workers.ts";

const sentAt = Date.parse("2026-01-01T00:00:00Z");
const beat = (over: Partial<WorkerHeartbeat> = {}): WorkerHeartbeat => ({
  id: "worker-image-host-1-abcdef",
  kind: "worker-image",
  queue: "image",
  job_types: ["image.resize"],
  concurrency: 4,
  version: "0.1.0",
  host: "host",
  pid: 1,
  started_at: new Date(sentAt).toISOString(),
  heartbeat_ms: 1000,
  state: "running",
  pulling: true,
  in_flight: 3,
  free_slots: 1,
  recent_durations_ms: [100, 300],
  jobs_done_last_hour: 5,
  jobs_failed_last_hour: 1,
  sent_at: new Date(sentAt).toISOString(),
  ...over,
});
const statusAt = (hb: WorkerHeartbeat, afterMs: number) => workerInstance(hb, sentAt + afterMs, 30_000).status;

describe("a worker heartbeat as the registry's readers judge it", () => {
  it("is healthy while its heartbeats come, unhealthy after two missed, gone after the gone threshold", () => {
    expect(statusAt(beat(), 900)).toBe("healthy");
    expect(statusAt(beat(), 2400)).toBe("healthy");
    expect(statusAt(beat(), 2600)).toBe("unhealthy");
    expect(statusAt(beat(), 30_001)).toBe("gone");
  });

  it("says draining for a draining worker, unhealthy while its pulls fail, gone once it stopped", () => {
    expect(statusAt(beat({ state: "draining" }), 0)).toBe("draining");
    expect(statusAt(beat({ state: "draining" }), 2600)).toBe("unhealthy");
    expect(statusAt(beat({ pulling: false }), 0)).toBe("unhealthy");
    expect(statusAt(beat({ state: "stopped" }), 0)).toBe("gone");
  });

  it("gives the load as working slots in use, in percent, and the average of its last jobs", () => {
    expect(workerInstance(beat(), sentAt, 30_000)).toMatchObject({ load: 75, in_flight: 3, average_duration_ms: 200, last_seen: beat().sent_at });
    expect(workerInstance(beat({ free_slots: 4, recent_durations_ms: [] }), sentAt, 30_000)).toMatchObject({ load: 0, average_duration_ms: null });
  });

  it("makes an instance id a subject token", () => {
    expect(workerRegistryId("worker-image-box.example.com-12-a1b2c3")).toBe("worker-image-box_example_com-12-a1b2c3");
  });
});
