import type { RpcClient } from "@cutroom/runtime";
import { describe, expect, it } from "vitest";
import { countJobEndings } from "./job-stats.ts";

const jobId = "0b6f3e0c-5d1e-4a8e-9b3e-2f7d2c1a9e10";
const otherId = "1b6f3e0c-5d1e-4a8e-9b3e-2f7d2c1a9e10";

describe("counting the jobs a worker ends", () => {
  it("counts finishes in the last hour, failed apart, and the time from claim to finish", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const rpc = { call: async (_s: string, method: string) => (method === "claim" ? { run: true } : { applied: true }) } as unknown as RpcClient;
    const { rpc: counted, stats } = countJobEndings(rpc, () => now);
    const claim = (id: string) => counted.call("job", "claim", { job_id: id, dispatch: 1, worker: "w" });
    const finish = (id: string, status: "succeeded" | "failed") =>
      counted.call("job", "finish", { job_id: id, dispatch: 1, last_event_seq: 0, outcome: status === "failed" ? { status, error: { code: "X", message: "x" } } : { status, result: { files: [] } } } as never);

    await claim(jobId);
    now += 1500;
    await finish(jobId, "succeeded");
    await claim(otherId);
    now += 500;
    await finish(otherId, "failed");
    expect(stats.read()).toEqual({ doneLastHour: 2, failedLastHour: 1, recentDurationsMs: [1500, 500] });

    now += 61 * 60_000;
    expect(stats.read()).toMatchObject({ doneLastHour: 0, failedLastHour: 0 });
  });
});
