import { defineProject } from "vitest/config";

// One file, one cluster of some twenty processes: it runs alone and takes its time. Its own group
// (after every other file) is what keeps it alone: the root's maxWorkers runs other files side by side,
// and it checks that faults heal within a stated time.
export default defineProject({
  test: { name: "chaos", fileParallelism: false, sequence: { groupOrder: 1 }, testTimeout: 300_000, hookTimeout: 300_000 },
});
