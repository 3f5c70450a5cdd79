import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startServices } from "./services.ts";
import { sleep, waitFor } from "./wait.ts";

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

/** A root whose apps are stand-ins: each announces ready, then lives (or, with CRASH_AFTER_MS, dies on its own). */
function fakeRoot(apps: string[]): string {
  const root = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "fake-apps-"));
  for (const app of apps) {
    mkdirSync(join(root, "apps", app, "src"), { recursive: true });
    writeFileSync(
      join(root, "apps", app, "src", "server.ts"),
      [
        `console.log("up on port " + (process.env.PORT ?? "-"));`,
        `process.send?.({ type: "ready" });`,
        `setInterval(() => {}, 1000);`,
        `if (process.env.CRASH_AFTER_MS) setTimeout(() => { console.error("crashing"); process.exit(3); }, Number(process.env.CRASH_AFTER_MS));`,
      ].join("\n"),
    );
  }
  return root;
}

const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

describe("supervision", () => {
  it("restarts an app killed with SIGKILL, and the new process announces ready", async () => {
    const root = fakeRoot(["auth-service"]);
    const restarts: string[] = [];
    const set = await startServices({ root, env: {}, apps: ["auth-service"], logDir: join(root, "logs"), supervise: { firstDelayMs: 100, onRestart: (name, reason) => restarts.push(`${name}: ${reason}`) } });
    try {
      const first = set.children.get("auth-service")!;
      await set.kill("auth-service");
      const second = await set.ready("auth-service");
      expect(second.pid).not.toBe(first.pid);
      expect(alive(second)).toBe(true);
      expect(set.children.get("auth-service")).toBe(second);
      expect(restarts).toEqual(["auth-service: signal SIGKILL"]);
    } finally {
      await set.stopAll();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("never restarts an app stopped on purpose, nor one killed when supervision is off", async () => {
    const root = fakeRoot(["auth-service", "job-service"]);
    const supervised = await startServices({ root, env: {}, apps: ["auth-service"], logDir: join(root, "logs"), supervise: { firstDelayMs: 50 } });
    const plain = await startServices({ root, env: {}, apps: ["job-service"], logDir: join(root, "logs") });
    try {
      await supervised.stop("auth-service", "SIGKILL");
      await plain.kill("job-service");
      await sleep(1000);
      expect(alive(supervised.children.get("auth-service")!)).toBe(false);
      expect(alive(plain.children.get("job-service")!)).toBe(false);
    } finally {
      await supervised.stopAll();
      await plain.stopAll();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("gives up on an app that keeps dying, naming it and its log file", async () => {
    const root = fakeRoot(["billing-service"]);
    let gaveUp: string | undefined;
    const set = await startServices({
      root,
      env: { CRASH_AFTER_MS: "200" },
      apps: ["billing-service"],
      logDir: join(root, "logs"),
      supervise: { maxRestarts: 2, firstDelayMs: 50, onGiveUp: (_name, message) => (gaveUp = message) },
    });
    try {
      await waitFor("supervision to give up", async () => gaveUp, 20_000);
      expect(gaveUp).toMatch(/^billing-service died 3 times in a row/);
      await expect(set.ready("billing-service")).rejects.toThrow(/gave up restarting it/);
      expect(gaveUp).toContain(join(root, "logs", "billing-service.log"));
      expect(gaveUp).toContain("exit code 3");
      await sleep(500);
      expect(alive(set.children.get("billing-service")!)).toBe(false);
    } finally {
      await set.stopAll();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("instances", () => {
  it("runs several instances of an app, each with its own name, log file and port, stopped one by one", async () => {
    const root = fakeRoot(["gateway", "job-service"]);
    const set = await startServices({ root, env: { PORT: "18000" }, apps: ["job-service", "gateway"], instances: { gateway: 2, "job-service": 3 }, logDir: join(root, "logs") });
    try {
      expect(set.instances).toEqual(["job-service", "job-service-2", "job-service-3", "gateway", "gateway-2"]);
      expect(set.env("gateway").PORT).toBeUndefined();
      const port2 = set.env("gateway-2").PORT;
      expect(port2).toMatch(/^\d+$/);
      expect(port2).not.toBe("18000");
      // Only listeners get ports of their own.
      expect(set.env("job-service-2").PORT).toBeUndefined();
      await set.stop("gateway-2");
      expect(alive(set.children.get("gateway")!)).toBe(true);
      expect(alive(set.children.get("gateway-2")!)).toBe(false);
      await set.start("gateway-2");
      expect(alive(set.children.get("gateway-2")!)).toBe(true);
      await sleep(200);
      expect(readFileSync(set.logFile("gateway"), "utf8")).toContain("up on port 18000");
      expect(readFileSync(set.logFile("gateway-2"), "utf8")).toContain(`up on port ${port2}`);
      expect(set.logFile("gateway-2")).toBe(join(root, "logs", "gateway-2.log"));
    } finally {
      await set.stopAll();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
