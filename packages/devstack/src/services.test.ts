import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { startServices } from "./services.ts";

it("reports a service that exits at start at once, not after the start timeout", async () => {
  const root = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "crashing-app-"));
  mkdirSync(join(root, "apps", "auth-service", "src"), { recursive: true });
  writeFileSync(join(root, "apps", "auth-service", "src", "server.ts"), "process.exit(1);\n");
  try {
    const started = Date.now();
    await expect(startServices({ root, env: {}, apps: ["auth-service"], logDir: join(root, "logs") })).rejects.toThrow(/auth-service exited during start/);
    expect(Date.now() - started).toBeLessThan(10_000);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
