import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Where the test files' durations are kept: `project:path` → seconds, as a full `npm test` took them
 * on the 2-core machine CI runs on. `node scripts/test-durations.mjs` writes it from the last run.
 */
export const durationsFile = join(import.meta.dirname, "..", "tests", "durations.json");

/**
 * Longest first, so the two workers end together: vitest orders by the durations of the last run on
 * this machine, but a fresh clone (CI) has none, and there it starts the largest files first. Chaos
 * (74 s, one test in a small file) then started last and ran alone for a minute. A file not in the
 * list (a new one) goes first, as vitest runs unknown files first; those in it by their duration.
 */
export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const durations = readDurations();
    const sized = await super.sort(files);
    const keyOf = (f: TestSpecification) => `${f.project.name}:${relative(this.ctx.config.root, f.moduleId)}`;
    const known = (f: TestSpecification) => durations[keyOf(f)];
    // Array.prototype.sort is stable: unknown files keep vitest's order among themselves.
    return sized.sort((a, b) => {
      const da = known(a);
      const db = known(b);
      if (da === undefined || db === undefined) return (da === undefined ? 0 : 1) - (db === undefined ? 0 : 1);
      return db - da;
    });
  }
}

function readDurations(): Record<string, number> {
  try {
    return JSON.parse(readFileSync(durationsFile, "utf8")) as Record<string, number>;
  } catch {
    return {};
  }
}
