import type { JobEvent } from "@cutroom/contracts";
import { describe, expect, it } from "vitest";
import { applyEvent } from "./apply-event.ts";

const now = new Date("2026-01-01T00:00:00Z");
const running = {
  status: "running" as const,
  stages: [
    { name: "fetch", status: "pending" },
    { name: "grade", status: "pending" },
  ],
  startedAt: now,
  lastEventSeq: 3,
};
const event = (seq: number, e: Record<string, unknown>) => ({ job_id: "00000000-0000-4000-8000-000000000000", seq, timestamp: now.toISOString(), ...e }) as JobEvent;

describe("applying a job event to its row", () => {
  it("marks a stage and the current stage, keeping the others", () => {
    expect(applyEvent(running, event(4, { type: "stage", stage: "fetch", status: "done" }), now)).toEqual({
      lastEventSeq: 4,
      stage: "fetch",
      stages: [
        { name: "fetch", status: "done" },
        { name: "grade", status: "pending" },
      ],
    });
  });

  it("ignores an event it has applied already, and anything after the job finished", () => {
    expect(applyEvent(running, event(3, { type: "progress", progress: 50 }), now)).toBeNull();
    expect(applyEvent({ ...running, status: "canceled" }, event(9, { type: "result", status: "succeeded", result: { files: [] } }), now)).toBeNull();
  });

  it("never moves a running job back to queued", () => {
    expect(applyEvent(running, event(4, { type: "status", status: "queued" }), now)).toEqual({ lastEventSeq: 4 });
  });

  it("finishes the job on a result or an error", () => {
    expect(applyEvent(running, event(5, { type: "result", status: "succeeded", result: { files: [] } }), now)).toMatchObject({
      status: "succeeded",
      progress: 100,
      completedAt: now,
    });
    expect(applyEvent(running, event(5, { type: "error", status: "failed", error: { code: "X", message: "boom" } }), now)).toMatchObject({
      status: "failed",
      error: { code: "X", message: "boom" },
      completedAt: now,
    });
  });
});
