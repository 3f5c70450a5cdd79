import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GiveUp, freePort, waitFor } from "@cutroom/devstack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");

/** Processes whose parent is `ppid`, from /proc. */
function childPids(ppid: number): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === ppid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// npm start itself (not through bootstrap, which would install packages), on ports and a data dir of its own.
describe.skipIf(!existsSync("/proc/self/stat"))("npm start supervises what it starts", () => {
  let dir: string;
  let port: number;
  let proc: ChildProcess;
  let output = "";
  let exited: Promise<number | null>;
  let blocker: Server | undefined;
  const api = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${port}${path}`, init);
  const appPid = (app: string) =>
    childPids(proc.pid!).find((p) => {
      try {
        return readlinkSync(`/proc/${p}/cwd`).endsWith(join("apps", app));
      } catch {
        return false;
      }
    });
  const natsPid = () => childPids(proc.pid!).find((p) => readFileSync(`/proc/${p}/comm`, "utf8").trim() === "nats-server");
  const ready = () => waitFor("/health/ready to answer 200", async () => (await api("/health/ready").catch(() => undefined))?.status === 200, 90_000, 250);

  beforeAll(async () => {
    dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "npm-start-"));
    // Postgres runs as its own user when we are root: it must reach its data dir below this one.
    chmodSync(dir, 0o755);
    port = await freePort();
    const env: Record<string, string> = { PATH: process.env.PATH!, HOME: process.env.HOME ?? dir, CUTROOM_DATA_DIR: dir, PORT: String(port) };
    for (const name of ["STORAGE_PORT", "CUTROOM_NATS_PORT", "CUTROOM_PG_PORT", "MODEL_EMULATOR_PORT"]) env[name] = String(await freePort());
    if (process.env.PG_BIN) env.PG_BIN = process.env.PG_BIN;
    proc = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    for (const s of [proc.stdout!, proc.stderr!]) s.on("data", (d) => (output += d));
    exited = new Promise((r) => proc.once("exit", (code) => r(code)));
    await waitFor("npm start to be up", async () => {
      if (proc.exitCode !== null) throw new GiveUp(`npm start exited: ${output}`);
      return output.includes("Cutroom is up");
    }, 180_000, 250);
  }, 200_000);

  afterAll(async () => {
    blocker?.close();
    if (proc.exitCode === null) {
      proc.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("brings back a SIGKILLed gateway, nats-server and Postgres, and serves again", { timeout: 240_000 }, async () => {
    const gateway = appPid("gateway")!;
    process.kill(gateway, "SIGKILL");
    await waitFor("a new gateway", async () => appPid("gateway") !== undefined && appPid("gateway") !== gateway, 30_000, 100);
    await ready();

    const nats = natsPid()!;
    process.kill(nats, "SIGKILL");
    await waitFor("a new nats-server", async () => natsPid() !== undefined && natsPid() !== nats, 30_000, 100);
    await ready();

    const postmaster = Number(readFileSync(join(dir, "pg", "postmaster.pid"), "utf8").split("\n")[0]);
    process.kill(postmaster, "SIGKILL");
    // A sign-up writes to the database: it succeeds once Postgres is back (and the services reconnected).
    await waitFor("a sign-up after Postgres came back", async () => {
      const res = await api("/api/v1/auth/register", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: `back-${Date.now()}@example.com`, password: "correct horse battery", full_name: "Back" }) });
      return res.status === 201;
    }, 90_000, 500);
    expect(output).toMatch(/gateway exited \(signal SIGKILL\); restarting it in 0\.5 s/);
    expect(output).toMatch(/nats-server exited \(signal SIGKILL\); restarting it/);
    expect(output).toMatch(/postgres exited .*; restarting it/);
    expect(proc.exitCode).toBeNull();
  });

  it("stops the whole stack with a non-zero exit, naming the app and its log, when an app keeps dying", { timeout: 240_000 }, async () => {
    const gateway = appPid("gateway")!;
    const nats = natsPid()!;
    process.kill(gateway, "SIGKILL");
    await waitFor("the gateway to exit", async () => !alive(gateway), 10_000, 20);
    // Its port taken: every restart dies at listen (EADDRINUSE).
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(port, "127.0.0.1", resolve));
    expect(await exited).toBe(1);
    expect(output).toContain("CUTROOM STOPPED: gateway died 6 times in a row");
    expect(output).toContain(join(dir, "logs", "gateway.log"));
    expect(alive(nats)).toBe(false);
  });
});
