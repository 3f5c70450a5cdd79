// `npm run bench [-- <name>…]`: starts its own Postgres, then for each benchmark a fresh stack
// (nats-server and every app it needs, on a database of its own, all on 127.0.0.1), runs it (the
// benchmark starts its peer, e.g. peer-stack.ts on a database of its own on the same Postgres),
// stops it, and prints a Markdown table per benchmark. Everything is stopped at the end, even on failure.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { ensureTools, freePort, makeAdmin, startPostgres, startStack, type Server, type Stack } from "@cutroom/devstack";
import { colorGradeWallTime } from "./color-grade-wall-time.ts";
import { editJobsWallTime } from "./edit-jobs-wall-time.ts";
import { jobCreation } from "./job-creation.ts";
import { countStatements, createApi, createDatabase, formatTable, type Benchmark } from "./lib.ts";
import { ensureRedis, stopPeerStacks } from "./peer-stack.ts";
import { tinyJobs } from "./tiny-jobs.ts";
import { uploadMemory } from "./upload-memory.ts";
import { workerThroughput } from "./worker-throughput.ts";
import { wsFanOut } from "./ws-fan-out.ts";
import { wsScale } from "./ws-scale.ts";

const benchmarks: Benchmark[] = [jobCreation, tinyJobs, workerThroughput, wsFanOut, wsScale, colorGradeWallTime, editJobsWallTime, uploadMemory];
// A hung benchmark fails the run instead of holding it forever.
const BENCH_TIMEOUT_MS = 180_000;
const ADMIN_EMAIL = "admin@bench.cutroom.test";

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !benchmarks.some((b) => b.name === w));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(", ")}; there are: ${benchmarks.map((b) => b.name).join(", ")}`);
  process.exit(2);
}
const selected = wanted.length > 0 ? benchmarks.filter((b) => wanted.includes(b.name)) : benchmarks;

const root = join(import.meta.dirname, "..");
const runDir = join(root, ".data", `bench-${process.pid}`);
mkdirSync(runDir, { recursive: true });
const log = (line: string) => console.log(`  ${line}`);

let pg: Server | undefined;
let stack: Stack | undefined;
const stopAll = async () => {
  await stopPeerStacks().catch(() => {});
  await stack?.stop().catch(() => {});
  await pg?.stop().catch(() => {});
};
const interrupted = (code: number) => () =>
  void stopAll().then(() => {
    rmSync(runDir, { recursive: true, force: true });
    process.exit(code);
  });
process.once("SIGINT", interrupted(130));
process.once("SIGTERM", interrupted(143));

const report: string[] = [machine()];
console.log(report[0] + "\n");
let failed = false;
try {
  const { pgBin } = ensureTools();
  ensureRedis(log);
  pg = await startPostgres({ pgBin, dataDir: join(runDir, "pg"), port: await freePort(), database: "cutroom", fast: true, statements: countStatements });
  for (const bench of selected) {
    console.log(`## ${bench.title} (${bench.name})`);
    const started = Date.now();
    try {
      stack = await startStack({
        databaseUrl: await createDatabase(pg.url, `bench_${bench.name.replaceAll("-", "_")}`),
        apps: bench.apps,
        parentDir: runDir,
        // Services' logs are piped through this process: at info they would compete with the client for CPU.
        // The sign-in throttles would refuse the benchmarks' dozens of users made from one address; no measure passes through them.
        env: { LOG_LEVEL: "warn", AUTH_REGISTRATIONS_PER_ADDRESS_PER_HOUR: "0", AUTH_LOGINS_PER_ADDRESS_PER_MINUTE: "0", ...bench.env },
      });
      log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${bench.apps.join(", ")}`);
      const api = createApi(stack.url);
      await api.register(ADMIN_EMAIL);
      await makeAdmin(stack, ADMIN_EMAIL);
      const ctx = { stack, api, adminToken: await api.login(ADMIN_EMAIL), dir: join(runDir, bench.name), postgresUrl: pg.url, log };
      mkdirSync(ctx.dir, { recursive: true });
      const result = await withTimeout(bench.run(ctx), bench.timeoutMs ?? BENCH_TIMEOUT_MS, bench.name);
      const took = `took ${((Date.now() - started) / 1000).toFixed(0)} s, stack start included; load average after: ${loadavg()[0]!.toFixed(2)}`;
      const section = `## ${bench.title}\n\n${formatTable(result)}\n- ${took}`;
      report.push(section);
      console.log(`\n${section}\n`);
    } catch (err) {
      // One benchmark failing (on a tree others are changing, say) does not cost the others' figures.
      failed = true;
      console.error(err);
      report.push(`## ${bench.title}\n\nfailed: ${(err as Error).message.split("\n")[0]}`);
      if (stack) {
        cpSync(join(stack.dir, "logs"), join(runDir, "logs", bench.name), { recursive: true });
        console.error(`the stack's logs are kept in ${join(runDir, "logs", bench.name)}`);
      }
    } finally {
      await stopPeerStacks().catch(() => {});
      await stack?.stop().catch(() => {});
      stack = undefined;
      // The scratch folder goes even when the run fails (a timed-out upload-memory leaves a 1 GiB file there); the logs stay.
      rmSync(join(runDir, bench.name), { recursive: true, force: true });
    }
  }
  mkdirSync(join(import.meta.dirname, "results"), { recursive: true });
  writeFileSync(join(import.meta.dirname, "results", "latest.md"), report.join("\n\n") + "\n");
} catch (err) {
  failed = true;
  console.error(err);
} finally {
  await stopAll();
}
if (!failed) rmSync(runDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The machine, as docs/PERFORMANCE.md records it. */
function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "unknown";
  const gb = (b: number) => `${(b / 1024 ** 3).toFixed(1)} GiB`;
  const nofile = execFileSync("sh", ["-c", "ulimit -n"]).toString().trim();
  return [
    `date: ${new Date().toISOString()}`,
    `command: npm run bench${wanted.length ? ` -- ${wanted.join(" ")}` : ""}`,
    `cpus: ${cpus().length} × ${cpu}`,
    `memory: ${gb(totalmem())} total, ${gb(freemem())} free`,
    `node: ${process.version}; open files limit: ${nofile}`,
    `load average at start: ${loadavg().map((l) => l.toFixed(2)).join(", ")}`,
  ].join("\n");
}
