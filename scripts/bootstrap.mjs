#!/usr/bin/env node
// `npm start` / `npm test` land here before node_modules may exist: check Node,
// install the npm packages when they are missing or stale, then hand over to the TypeScript script.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
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

const tsx = join(root, "node_modules", ".bin", "tsx");
const child = spawn(tsx, [join(root, "scripts", `${command}.ts`), ...process.argv.slice(3)], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1" },
});
// A signal sent to this process alone (a supervisor's SIGTERM, not the terminal's Ctrl-C to the
// whole group) must still stop the stack: pass it on and leave when the script has cleaned up.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.once("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
