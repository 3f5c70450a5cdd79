#!/usr/bin/env node
// `npm start` / `npm test` land here before node_modules may exist: check Node,
// install the npm packages when they are missing or stale, then hand over to the TypeScript script.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const command = process.argv[2];
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 20 || (major === 20 && minor < 9)) {
  console.error(`Cutroom needs Node.js 20.9 or newer; this is ${process.versions.node}.`);
  process.exit(1);
}

const marker = join(root, "node_modules", ".package-lock.json");
const lock = join(root, "package-lock.json");
if (!existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs)) {
  console.log("installing npm packages…");
  // `npm install`, not `npm ci`: it keeps to the lockfile (and every version is pinned exactly), and it
  // does not refuse a lockfile written without the optional packages of other platforms.
  const r = spawnSync("npm", ["install", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    console.error("npm install failed: see the output above.");
    process.exit(r.status ?? 1);
  }
}

if (command === "start" || command === "test") buildDashboard();
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: "1" };
if (command === "test") Object.assign(env, findChromium());

const tsx = join(root, "node_modules", ".bin", "tsx");
const child = spawn(tsx, [join(root, "scripts", `${command}.ts`), ...process.argv.slice(3)], {
  cwd: root,
  stdio: "inherit",
  env,
});
// A signal sent to this process alone (a supervisor's SIGTERM, not the terminal's Ctrl-C to the
// whole group) must still stop the stack: pass it on and leave when the script has cleaned up.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.once("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

/** The newest modification time of the files under `paths` (folders walked). */
function newestChange(paths) {
  let newest = 0;
  for (const path of paths) {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) continue;
    const files = stat.isDirectory() ? readdirSync(path, { recursive: true }).map((f) => join(path, f)) : [path];
    for (const file of files) newest = Math.max(newest, statSync(file).mtimeMs);
  }
  return newest;
}

/**
 * The gateway serves apps/dashboard's build at /dashboard: build it (vite, about two seconds) when it
 * is missing or older than its sources or the SDK it bundles. A failed build does not stop the stack:
 * /dashboard then answers 503 saying so.
 */
function buildDashboard() {
  const dir = join(root, "apps", "dashboard");
  const built = statSync(join(dir, "dist", "index.html"), { throwIfNoEntry: false });
  const sources = ["src", "index.html", "vite.config.ts", "package.json"].map((f) => join(dir, f)).concat(join(root, "packages", "sdk", "src"));
  if (built && built.mtimeMs >= newestChange(sources)) return;
  console.log("building the dashboard (apps/dashboard)…");
  const r = spawnSync(join(root, "node_modules", ".bin", "vite"), ["build", "--logLevel", "warn"], { cwd: dir, stdio: "inherit" });
  if (r.status !== 0) console.error("the dashboard did not build (see above): /dashboard answers 503 until it does");
}

/**
 * The browser test drives Debian's chromium (never a downloaded browser): installed when missing and
 * we are root, as ffmpeg and nats-server are; otherwise the test is skipped, saying why.
 */
function findChromium() {
  const chromium = "/usr/bin/chromium";
  if (existsSync(chromium)) return {};
  const canInstall = process.getuid?.() === 0 && spawnSync("sh", ["-c", "command -v apt-get"], { stdio: "ignore" }).status === 0;
  if (canInstall) {
    console.log("installing chromium from Debian packages (for the dashboard's browser test)…");
    const aptEnv = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const ok = spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" }).status === 0 && spawnSync("apt-get", ["install", "-y", "-qq", "chromium"], { stdio: "inherit", env: aptEnv }).status === 0;
    if (ok && existsSync(chromium)) return {};
  }
  const reason = canInstall ? "apt-get install chromium failed (see above)" : "chromium is not installed and this is not root (Debian: apt-get install -y chromium)";
  console.log(`the dashboard's browser test will be skipped: ${reason}`);
  return { CUTROOM_BROWSER_SKIP: reason };
}
