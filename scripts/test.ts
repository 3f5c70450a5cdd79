// `npm test`: starts throwaway Postgres, NATS and S3 (local binaries and s3rver, or containers where Docker is), runs every test, stops them.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { chooseTestServerMode, startTestServers, testServerEnv } from "@cutroom/devstack";

const root = join(import.meta.dirname, "..");
const args = process.argv.slice(2);

// The whole suite typechecks and lints first; a filtered run (`npm test -- apps/gateway`) skips both for speed.
if (args.length === 0) {
  console.log("typechecking and linting every package…");
  const checks = spawnSync("npm", ["run", "--silent", "check"], { cwd: root, stdio: "inherit", env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1" } });
  if (checks.status !== 0) {
    console.error("typecheck or lint failed");
    process.exit(1);
  }
}
// The one place that decides where the servers come from; the tests see only the env below.
const choice = await chooseTestServerMode({ ...process.env, CUTROOM_TEST_SERVERS: process.env.CUTROOM_TEST_SERVERS ?? "auto" }).catch(fail);
console.log(`test servers: ${choice.mode} (${choice.reason})`);
const runDir = join(root, ".data", `test-${process.pid}`);
mkdirSync(runDir, { recursive: true });
const servers = await startTestServers(choice, runDir).catch((err: Error) => fail(new Error(`could not start the test servers: ${err.message}`)));

const env = {
  ...process.env,
  ...testServerEnv(servers),
  CUTROOM_TEST_DIR: runDir,
  LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
};

const vitest = join(root, "node_modules", ".bin", "vitest");
const report = join(runDir, "vitest.json");
const reporters = ["--reporter=default", "--reporter=json", `--outputFile.json=${report}`];
const child = spawn(vitest, ["run", ...reporters, ...args], { cwd: root, env, stdio: "inherit" });
const code: number = await new Promise((resolve) => child.once("exit", (c, sig) => resolve(c ?? (sig ? 1 : 0))));

await servers.stop();
// The service logs first and the verdict last, so the end of a failed run's output names what failed.
if (code !== 0) printServiceLogs(runDir);
printSummary(report);
if (code === 0 && !process.env.CUTROOM_KEEP_TEST_DATA) rmSync(runDir, { recursive: true, force: true });
process.exit(code);

function fail(err: Error): never {
  console.error(err.message);
  process.exit(1);
}

/** After a failed run, the end of every service log the end-to-end tests left, to see what went wrong. */
function printServiceLogs(dir: string) {
  const logs = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".log"));
  for (const file of logs) {
    const lines = readFileSync(join(dir, file), "utf8").trimEnd().split("\n").slice(-25);
    if (lines.join("").trim()) console.error(`\n--- ${file} (last ${lines.length} lines) ---\n${lines.join("\n")}`);
  }
  console.error(`\nservice logs and data kept in ${dir}`);
}

interface Report {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults: { name: string; message?: string; assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
}

/** Each failed test with its first error line, then one plain closing line: `tests: N passed, N failed, N skipped`. */
function printSummary(file: string) {
  try {
    const r = JSON.parse(readFileSync(file, "utf8")) as Report;
    for (const f of r.testResults) {
      const where = relative(root, f.name);
      const failed = f.assertionResults.filter((a) => a.status === "failed");
      if (failed.length === 0 && f.message) console.log(`FAILED ${where}: ${firstLine(f.message)}`);
      for (const a of failed) console.log(`FAILED ${where} > ${a.fullName}: ${firstLine(a.failureMessages[0] ?? "")}`);
    }
    console.log(`\ntests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  } catch {
    console.log("\ntests: no report (vitest did not finish)");
  }
}

function firstLine(text: string): string {
  return (text.split("\n").find((l) => l.trim()) ?? "").trim().slice(0, 300);
}
