import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

const root = import.meta.dirname;
const dirs = ["packages", "apps", "tests"].flatMap((d) => readdirSync(join(root, d)).map((n) => `${d}/${n}`)).concat("scripts");
// What vitest itself would take as a folder's config (apps/dashboard has only a vite.config.ts).
const configOf = (dir: string) => ["vitest.config.ts", "vite.config.ts"].map((f) => `${dir}/${f}`).find((f) => existsSync(join(root, f)));
const nameOf = (dir: string) => (existsSync(join(root, dir, "package.json")) ? (JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8")) as { name: string }).name : dir);

export default defineConfig({
  test: {
    // A folder with its own vitest.config.ts sets its own timeouts; every other one takes this file's
    // (a bare folder project would get vitest's 5 s, too short for ffmpeg or sharp while other files run).
    projects: dirs.map((dir) => configOf(dir) ?? { extends: true, root: dir, test: { name: nameOf(dir) } }),
    // Two files side by side (each has its own database, NATS and ports): about 13 minutes on 2 cores
    // where one at a time takes 23. Tried twice before and taken back on timing failures under the load:
    // at 01a9e17 (a NATS node's rejoin, last-delivery, worker-leases: fixed since) and at 785d445 (a
    // broker-loss recovery, a fuzz request's reset). Those two were real faults, not slowness, and are
    // fixed: a stream made again at once lost its first block to nats-server's delayed removal (ADR 021),
    // and the gateway cut a refused request's connection before its client could read the 431.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
