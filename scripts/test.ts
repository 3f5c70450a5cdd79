// `npm test`: starts throwaway Postgres, nats-server -js and s3rver, runs every test, stops them.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureTools, freePort, startNats, startPostgres, startS3rver } from "@cutroom/devstack";

const root = join(import.meta.dirname, "..");
const args = process.argv.slice(2);

// The whole suite typechecks first; a filtered run (`npm test -- apps/gateway`) skips it for speed.
if (args.length === 0) {
  console.log("typechecking every package…");
  const tc = spawnSync(join(root, "node_modules", ".bin", "turbo"), ["run", "typecheck", "--output-logs=errors-only"], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1" },
  });
  if (tc.status !== 0) {
    console.error("typecheck failed");
    process.exit(1);
  }
}
const runDir = join(root, ".data", `test-${process.pid}`);
mkdirSync(runDir, { recursive: true });

const { pgBin } = ensureTools();
const [pgPort, natsPort, s3Port] = [await freePort(), await freePort(), await freePort()];
const [pgR, natsR, s3R] = await Promise.allSettled([
  startPostgres({ pgBin, dataDir: join(runDir, "pg"), port: pgPort, database: "cutroom", fast: true }),
  startNats({ storeDir: join(runDir, "nats"), port: natsPort }),
  startS3rver({ dir: join(runDir, "s3"), port: s3Port, bucket: "cutroom-test" }),
]);
if (pgR.status === "rejected" || natsR.status === "rejected" || s3R.status === "rejected") {
  // One server failed: stop the ones that did start, so none outlives this run.
  const results = [pgR, natsR, s3R];
  await Promise.allSettled(results.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
  const reasons = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
  console.error(`could not start the test servers: ${reasons.join("; ")}`);
  process.exit(1);
}
const [pg, nats, s3] = [pgR.value, natsR.value, s3R.value];

const env = {
  ...process.env,
  DATABASE_URL: pg.url,
  NATS_URL: nats.url,
  S3_ENDPOINT: s3.url,
  S3_BUCKET: s3.bucket,
  S3_REGION: "us-east-1",
  S3_ACCESS_KEY_ID: "S3RVER",
  S3_SECRET_ACCESS_KEY: "S3RVER",
  CUTROOM_TEST_DIR: runDir,
  LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
};

const vitest = join(root, "node_modules", ".bin", "vitest");
const report = join(runDir, "vitest.json");
const reporters = ["--reporter=default", "--reporter=json", `--outputFile.json=${report}`];
const child = spawn(vitest, ["run", ...reporters, ...args], { cwd: root, env, stdio: "inherit" });
const code: number = await new Promise((resolve) => child.once("exit", (c, sig) => resolve(c ?? (sig ? 1 : 0))));

await Promise.allSettled([pg.stop(), nats.stop(), s3.stop()]);
printSummary(report);
if (code === 0 && !process.env.CUTROOM_KEEP_TEST_DATA) rmSync(runDir, { recursive: true, force: true });
if (code !== 0) printServiceLogs(runDir);
process.exit(code);

/** After a failed run, the end of every service log the end-to-end tests left, to see what went wrong. */
function printServiceLogs(dir: string) {
  const logs = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".log"));
  for (const file of logs) {
    const lines = readFileSync(join(dir, file), "utf8").trimEnd().split("\n").slice(-25);
    if (lines.join("").trim()) console.error(`\n--- ${file} (last ${lines.length} lines) ---\n${lines.join("\n")}`);
  }
  console.error(`\nservice logs and data kept in ${dir}`);
}

/** One plain closing line, the same whatever the runner prints: `tests: N passed, N failed, N skipped`. */
function printSummary(file: string) {
  try {
    const r = JSON.parse(readFileSync(file, "utf8")) as { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number };
    console.log(`\ntests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
  } catch {
    console.log("\ntests: no report (vitest did not finish)");
  }
}
