import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { durationsFile } from "./test-order.ts";

// `npm run test:durations`: writes tests/durations.json (see test-order.ts) from the durations vitest kept
// of the last `npm test` here. Run it after a full run on a 2-core machine, and commit the file.
const cache = join(import.meta.dirname, "..", "node_modules", ".vite", "vitest");
const runs = readdirSync(cache).map((d) => join(cache, d, "results.json"));
const results: [string, { duration: number }][] = runs.flatMap((f) => {
  try {
    return (JSON.parse(readFileSync(f, "utf8")) as { results: [string, { duration: number }][] }).results;
  } catch {
    return [];
  }
});
if (results.length === 0) throw new Error(`no test durations in ${cache}: run npm test first`);
// Whole seconds, longest first: a rerun moves few lines.
const durations = Object.fromEntries(
  results
    .map(([key, r]) => [key, Math.max(1, Math.round(r.duration / 1000))] as const)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)),
);
writeFileSync(durationsFile, `${JSON.stringify(durations, null, 1)}\n`);
console.log(`${Object.keys(durations).length} test files' durations written to ${durationsFile}`);
