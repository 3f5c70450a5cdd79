import type { JobEvent } from "@cutroom/contracts";
import { describe, expect, it } from "vitest";
import { applyEvent, foldEvents } from "./apply-event.ts";

const now = new Date("2026-01-01T00:00:00Z");
const running = {
  status: "running" as const,
  stages: [
    { name: "fetch", status: "pending" },
    { name: "grade", status: "pending" },
  ],
  lastEventSeq: 3,
};
const event = (seq: number, e: Record<string, unknown>) => ({ job_id: "00000000-0000-4000-8000-000000000000", seq, timestamp: now.toISOString(), ...e }) as JobEvent;

describe("applying a job event to its row", () => {
  it("marks a stage and the current stage, keeping the others", () => {
    expect(applyEvent(running, event(4, { type: "stage", stage: "fetch", status: "done" }))).toEqual({
      lastEventSeq: 4,
      stage: "fetch",
      stages: [
        { name: "fetch", status: "done" },
        { name: "grade", status: "pending" },
      ],
    });
  });

  it("ignores an event it has applied already, and anything after the job finished", () => {
    expect(applyEvent(running, event(3, { type: "progress", progress: 50 }))).toBeNull();
    expect(applyEvent({ ...running, status: "canceled" }, event(9, { type: "result", status: "succeeded", result: { files: [] } }))).toBeNull();
  });

  it("never takes the job's status from an event: a status, result or error event moves only the last seq", () => {
    const stray = [
      { type: "status", status: "queued" },
      { type: "status", status: "running" },
      { type: "result", status: "succeeded", result: { files: [] } },
      { type: "error", status: "failed", error: { code: "X", message: "boom" } },
    ];
    for (const e of stray) expect(applyEvent(running, event(5, e))).toEqual({ lastEventSeq: 5 });
    expect(applyEvent({ ...running, status: "queued" }, event(5, { type: "status", status: "running" }))).toEqual({ lastEventSeq: 5 });
  });

  it("folds a batch of one job's events as if applied one by one, in seq order, skipping those applied already", () => {
    const batch = [
      event(6, { type: "progress", progress: 40, stage: "grade" }),
      event(3, { type: "stage", stage: "fetch", status: "running" }),
      event(4, { type: "stage", stage: "fetch", status: "done" }),
      event(5, { type: "stage", stage: "grade", status: "running" }),
    ];
    expect(foldEvents(running, batch)).toEqual({
      lastEventSeq: 6,
      progress: 40,
      stage: "grade",
      stages: [
        { name: "fetch", status: "done" },
        { name: "grade", status: "running" },
      ],
    });
    expect(foldEvents(running, [event(2, { type: "progress", progress: 10 })])).toBeNull();
    expect(foldEvents({ ...running, status: "succeeded" }, batch)).toBeNull();
  });
});
