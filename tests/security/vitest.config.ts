import { defineProject } from "vitest/config";

// Each file starts the whole stack as separate processes: run files one at a time on small machines.
export default defineProject({
  test: { name: "security", fileParallelism: false, testTimeout: 60_000, hookTimeout: 180_000 },
});
