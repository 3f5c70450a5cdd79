import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "tests/*", "scripts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
