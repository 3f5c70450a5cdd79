import { parseProgressFromLogs } from "replicate";
import { expect, it } from "vitest";
import { progressLine } from "./progress-log.ts";

it("writes progress lines the replicate client reads, the last one counting", () => {
  const logs = ["Running a model", progressLine(12, 30, 1500), progressLine(21, 30, 2600)].join("\n");
  expect(parseProgressFromLogs(logs)).toEqual({ percentage: 0.7, current: 21, total: 30 });
  expect(progressLine(30, 30, 4000)).toMatch(/^100%\|█{20}\| 30\/30 \[00:04<00:00, +7\.50it\/s\]$/);
});
