import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "tests/*", "scripts"],
    // Files run side by side: most of their time is spent waiting on processes and timers, not on the CPU,
    // and each has its own database, NATS and ports. Vitest's default (cores − 1) would be one at a time on 2 cores.
    // This is the one limit for every project: a project's own `fileParallelism` does not change it.
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
