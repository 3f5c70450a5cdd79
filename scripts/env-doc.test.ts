import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { z } from "zod";
import { describe, expect, it } from "vitest";
import { declaredVariables, docPath, renderConfiguration, variablesOf } from "./env-doc.ts";

describe("docs/CONFIGURATION.md", () => {
  it("is what the env schemas generate", async () => {
    const committed = readFileSync(docPath, "utf8");
    expect(committed, "docs/CONFIGURATION.md is out of date: run `npm run env:doc`").toBe(await renderConfiguration());
  });

  it("takes each variable's comment, default argument and @default override from its declaration", () => {
    const found = declaredVariables(
      "env.ts",
      `export const Env = z.object({
        /** Jobs at once;
         *  also the most messages held. */
        CONCURRENCY: z.coerce.number().default(availableParallelism()),
        /**
         * Where files go.
         * @default the repo's .data
         */
        DIR: z.string().default(join(here, ".data")),
        // a line comment is not a description
        BARE: z.string().optional(),
        lowercase: z.string(),
      });`,
    );
    expect([...found.keys()]).toEqual(["CONCURRENCY", "DIR", "BARE"]);
    expect(found.get("CONCURRENCY")).toMatchObject({ comment: "Jobs at once; also the most messages held." });
    expect(found.get("CONCURRENCY")!.defaultArg!.getText()).toBe("availableParallelism()");
    expect(found.get("DIR")).toMatchObject({ comment: "Where files go.", defaultTag: "the repo's .data" });
    expect(found.get("BARE")!.comment).toBeUndefined();
  });

  it("refuses a variable without a description, naming it and its file", () => {
    const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "env-doc-"));
    try {
      const file = join(dir, "env.ts");
      writeFileSync(file, `export const Env = z.object({\n  /** Documented. */\n  A: z.string().default("a"),\n  B: z.string().optional(),\n});\n`);
      const schema = z.object({ A: z.string().default("a"), B: z.string().optional() });
      const rel = relative(join(import.meta.dirname, ".."), file);
      expect(() => variablesOf(schema, [rel])).toThrow(`B has no description: give it a /** comment */ in ${rel}`);
      expect(variablesOf(schema.pick({ A: true }), [rel])).toEqual([{ name: "A", default: "`a`", description: "Documented." }]);
      expect(variablesOf(z.object({ B: z.string().optional().describe("From describe().") }), [rel])).toEqual([{ name: "B", default: "unset", description: "From describe()." }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
