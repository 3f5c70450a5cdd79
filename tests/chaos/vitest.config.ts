import { defineProject } from "vitest/config";

// One file, one cluster of some twenty processes: it runs alone and takes its time.
export default defineProject({
  test: { name: "chaos", fileParallelism: false, testTimeout: 300_000, hookTimeout: 300_000 },
});
