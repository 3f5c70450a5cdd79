import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";

it("ends a process past its shutdown deadline even when exiting is blocked (as by native work in flight)", async () => {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "shutdown-"));
  const script = join(dir, "stuck.ts");
  // A closer that never finishes, and an exit that never completes: what a running sharp encode does to process.exit.
  writeFileSync(
    script,
    `import { createLogger, onShutdown } from ${JSON.stringify(join(import.meta.dirname, "index.ts"))};
process.on("exit", () => { for (;;) {} });
onShutdown(createLogger("stuck", "silent"), [() => new Promise(() => {})], 500);
process.send?.("ready");
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["ignore", "ignore", "ignore", "ipc"] });
  await new Promise((r) => child.once("message", r));
  const started = Date.now();
  child.kill("SIGTERM");
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, sig) => resolve(sig)));
  expect(signal).toBe("SIGKILL");
  expect(Date.now() - started).toBeLessThan(5_000);
}, 20_000);
