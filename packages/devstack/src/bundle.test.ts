import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, expect, it } from "vitest";
import { bundleApps } from "./bundle.ts";

const root = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "bundle-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function write(path: string, text: string) {
  mkdirSync(join(root, path, ".."), { recursive: true });
  writeFileSync(join(root, path), text);
}

it("runs an app as one file whose modules still find the files beside their sources, and names it by its content", async () => {
  // A package module that reads a file next to its source, as the migrations, catalogs and the dashboard are found.
  write("packages/p/data.txt", "beside the package\n");
  write(
    "packages/p/src/where.ts",
    [
      `import { readFileSync } from "node:fs";`,
      `export const where = { url: import.meta.url, dirname: import.meta.dirname, filename: import.meta.filename };`,
      `export const data: string = readFileSync(new URL("../data.txt", import.meta.url), "utf8").trim();`,
    ].join("\n"),
  );
  write("apps/demo/src/server.ts", `import { where, data } from "../../../packages/p/src/where.ts";\nconsole.log(JSON.stringify({ ...where, data, own: import.meta.dirname }));\n`);

  const first = await bundleApps(root, ["demo"]);
  const out = JSON.parse(execFileSync(process.execPath, [first.demo!], { encoding: "utf8" })) as Record<string, string>;
  const source = join(root, "packages", "p", "src", "where.ts");
  expect(out).toEqual({ url: pathToFileURL(source).href, dirname: join(root, "packages", "p", "src"), filename: source, data: "beside the package", own: join(root, "apps", "demo", "src") });
  expect(first.demo).toMatch(/[/\\]\.data[/\\]bundles[/\\]demo\.[0-9a-f]{16}\.mjs$/);

  // The same code is the same file; a change is a new one.
  expect((await bundleApps(root, ["demo"])).demo).toBe(first.demo);
  write("apps/demo/src/server.ts", `console.log("changed");\n`);
  const changed = (await bundleApps(root, ["demo"])).demo!;
  expect(changed).not.toBe(first.demo);
  expect(execFileSync(process.execPath, [changed], { encoding: "utf8" }).trim()).toBe("changed");
});

it("builds again when any module an app imports changed (not only its entry), when a bundle was removed, or when a build setting changed, and only then", async () => {
  write("packages/q/src/word.ts", `export const word = "first";\n`);
  write("apps/words/src/server.ts", `import { word } from "../../../packages/q/src/word.ts";\nconsole.log(word);\n`);
  const run = async () => execFileSync(process.execPath, [(await bundleApps(root, ["words"])).words!], { encoding: "utf8" }).trim();
  expect(await run()).toBe("first");
  write("packages/q/src/word.ts", `export const word = "second";\n`);
  expect(await run()).toBe("second");
  // The bundle removed, its record of sources left: built again, not a path to nothing.
  rmSync((await bundleApps(root, ["words"])).words!);
  expect(await run()).toBe("second");
  // Each build rewrites its record of what it read; a reuse leaves it alone.
  const record = () => {
    const dir = join(root, ".data", "bundles");
    return readdirSync(dir).filter((f) => f.startsWith("sources.")).map((f) => statSync(join(dir, f)).mtimeMs).sort().join();
  };
  const settled = record();
  await bundleApps(root, ["words"]);
  expect(record()).toBe(settled);
  // A setting that decides the build (a package's exports, the TypeScript options) builds again.
  for (const setting of ["packages/q/package.json", "tsconfig.json"]) {
    const was = record();
    write(setting, `{}\n`);
    await bundleApps(root, ["words"]);
    expect(record(), setting).not.toBe(was);
  }
});
