import { defineProject } from "vitest/config";

// The tests start the whole stack as separate processes and run the CLI as child processes: one file at a time.
export default defineProject({
  test: { name: "cli", fileParallelism: false, testTimeout: 90_000, hookTimeout: 180_000 },
});
