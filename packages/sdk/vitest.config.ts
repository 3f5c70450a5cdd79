import { defineProject } from "vitest/config";

// The tests start the whole stack as separate processes: one file at a time on small machines.
export default defineProject({
  test: { name: "sdk", fileParallelism: false, testTimeout: 60_000, hookTimeout: 180_000 },
});
