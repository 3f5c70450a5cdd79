import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { build, type Plugin } from "esbuild";

/**
 * Each app's `src/server.ts` with the workspace code it imports, as one ESM file (ADR 046). Started as
 * `node --import tsx src/server.ts` an app spent about 1.2 s of CPU loading some 150 TypeScript modules
 * through tsx's loader thread; the same code as one file loads in about 0.35 s. A stack starts nine
 * apps on two cores, and the test suite starts a stack per file.
 *
 * Packages from node_modules stay imports (node loads them as before, native ones included); every
 * workspace module keeps its own `import.meta.url`, `dirname` and `filename`, so files it finds next to
 * its source (migrations, catalogs, the dashboard, a forked child's script) are where they were.
 * Bundles are named by their content under `<root>/.data/bundles/` (inside the repo, so node finds
 * node_modules from there): stacks started together share a file, and a change to the code is a new one.
 * Returns each app's bundle path.
 */
export async function bundleApps(root: string, apps: readonly string[]): Promise<Record<string, string>> {
  const outDir = join(root, ".data", "bundles");
  mkdirSync(outDir, { recursive: true });
  const result = await build({
    entryPoints: Object.fromEntries(apps.map((app) => [app, join(root, "apps", app, "src", "server.ts")])),
    outdir: outDir,
    bundle: true,
    write: false,
    platform: "node",
    format: "esm",
    target: "node20",
    // Stack traces in the logs point into the TypeScript sources (node runs the bundles with --enable-source-maps).
    sourcemap: "inline",
    logLevel: "silent",
    plugins: [packagesOutside, ownImportMeta],
  });
  const paths: Record<string, string> = {};
  for (const file of result.outputFiles) {
    const app = file.path.slice(outDir.length + 1).replace(/\.js$/, "");
    const path = join(outDir, `${app}.${createHash("sha256").update(file.contents).digest("hex").slice(0, 16)}.mjs`);
    if (!existsSync(path)) {
      // Written aside and renamed: a stack starting meanwhile never loads half a file.
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, file.contents);
      renameSync(tmp, path);
    }
    paths[app] = path;
  }
  return paths;
}

/** Bare imports stay imports, but the workspace's own packages (@cutroom/*) are bundled from their sources. */
const packagesOutside: Plugin = {
  name: "packages-outside",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith("@cutroom/") ? undefined : { path: args.path, external: true }));
  },
};

/** A workspace module's `import.meta.url`, `dirname` and `filename` as they are when it runs from its source. */
const ownImportMeta: Plugin = {
  name: "own-import-meta",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      const contents = source
        .replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href))
        .replaceAll("import.meta.dirname", JSON.stringify(dirname(args.path)))
        .replaceAll("import.meta.filename", JSON.stringify(args.path));
      return { contents, loader: "ts" };
    });
  },
};
