import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
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
 *
 * A build remembers the source files it read (their size and modification time, taken before it read
 * them) and the files that decide how it builds (this one, the TypeScript settings, the workspace's
 * package.json files and lockfile) beside the bundles; a stack for which all of them are as they were
 * reuses the bundles without building (a build of the nine apps is 0.6 s of CPU, and `npm test` starts
 * some sixty stacks).
 */
export async function bundleApps(root: string, apps: readonly string[]): Promise<Record<string, string>> {
  const outDir = join(root, ".data", "bundles");
  mkdirSync(outDir, { recursive: true });
  const manifest = join(outDir, `sources.${createHash("sha256").update(apps.join(",")).digest("hex").slice(0, 16)}.json`);
  const built = unchanged(manifest);
  if (built) return built;
  // Each stamp taken before its file is read: a file saved during the build is seen as changed next time.
  const stamps = new Map(buildSettings(root).map((f) => [f, stamp(f)]));
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
    metafile: true,
    absWorkingDir: root,
    plugins: [packagesOutside, ownImportMeta(stamps)],
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
  for (const input of Object.keys(result.metafile.inputs)) if (!stamps.has(join(root, input))) stamps.set(join(root, input), stamp(join(root, input)));
  const sources: Sources = Object.fromEntries(stamps);
  const tmp = `${manifest}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ sources, paths }));
  renameSync(tmp, manifest);
  return paths;
}

/** Files that decide what a build makes besides the sources it reads: a change to any of them builds again. */
function buildSettings(root: string): string[] {
  const files = [import.meta.filename, ...["tsconfig.json", "tsconfig.base.json", "package.json", "package-lock.json"].map((f) => join(root, f))];
  for (const dir of ["apps", "packages"].map((d) => join(root, d)).filter((d) => existsSync(d))) {
    for (const name of readdirSync(dir)) files.push(join(dir, name, "package.json"), join(dir, name, "tsconfig.json"));
  }
  return files;
}

/** A source file's size and modification time, or null when it is gone. */
type Stamp = [size: number, mtimeMs: number] | null;
type Sources = Record<string, Stamp>;

function stamp(path: string): Stamp {
  const s = statSync(path, { throwIfNoEntry: false });
  return s ? [s.size, s.mtimeMs] : null;
}

/** The bundles a previous build wrote, when every source it read is as it was and the bundles are still there. */
function unchanged(manifest: string): Record<string, string> | undefined {
  let last: { sources: Sources; paths: Record<string, string> };
  try {
    last = JSON.parse(readFileSync(manifest, "utf8"));
  } catch {
    return undefined;
  }
  const same = Object.entries(last.sources).every(([path, was]) => JSON.stringify(stamp(path)) === JSON.stringify(was));
  return same && Object.values(last.paths).every((p) => existsSync(p)) ? last.paths : undefined;
}

/** Bare imports stay imports, but the workspace's own packages (@cutroom/*) are bundled from their sources. */
const packagesOutside: Plugin = {
  name: "packages-outside",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith("@cutroom/") ? undefined : { path: args.path, external: true }));
  },
};

/** A workspace module's `import.meta.url`, `dirname` and `filename` as they are when it runs from its source; each file's stamp into `stamps` before it is read. */
const ownImportMeta = (stamps: Map<string, Stamp>): Plugin => ({
  name: "own-import-meta",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      stamps.set(args.path, stamp(args.path));
      const source = await readFile(args.path, "utf8");
      const contents = source
        .replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href))
        .replaceAll("import.meta.dirname", JSON.stringify(dirname(args.path)))
        .replaceAll("import.meta.filename", JSON.stringify(args.path));
      return { contents, loader: "ts" };
    });
  },
});
