// `npm run env:doc`: writes docs/CONFIGURATION.md from the env schemas themselves (each app's zod `Env`,
// the workers' WorkerEnv, npm start's StartEnv) and the variables npm test reads, so the reference
// cannot drift from the code. scripts/env-doc.test.ts fails when the committed file is stale.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import { z } from "zod";

const root = join(import.meta.dirname, "..");
export const docPath = join(root, "docs", "CONFIGURATION.md");

// Where the shared variables are declared; an app's own env.ts is searched before these.
const sharedEnvFiles = ["packages/worker-runtime/src/env.ts", "packages/runtime/src/env.ts"];

/*
 * npm test has no schema of its own: the variables below are found in its sources (`process.env.X`),
 * and each one found must be described here, or generation fails naming it.
 */
const testSources = ["scripts/test.ts", "packages/devstack/src", "packages/testing/src", "packages/runtime/src/test-nats.ts"];
const testVariables: Record<string, string | { setByNpmTest: true }> = {
  LOG_LEVEL: "pino level of the services the tests start (their logs are printed after a failed run).",
  TEST_LOG_LEVEL: "pino level of the loggers the tests create in their own process (e.g. the worker loop under test).",
  CUTROOM_KEEP_TEST_DATA: "Set to anything to keep each run's servers' data and service logs under `.data/test-<pid>`, even when every test passed.",
  CUTROOM_NODE_ARGS: "Node flags, space-separated, for every app process a stack starts (npm start, npm test, npm run bench), e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` for a CPU profile of each.",
  PG_BIN: "Postgres server binaries (initdb, postgres); default the newest /usr/lib/postgresql/<v>/bin.",
  CUTROOM_TEST_SERVERS:
    "Where the test servers come from: `embedded` (local Postgres, nats-server and s3rver), `containers` (Postgres, a 3-node NATS JetStream cluster and SeaweedFS, which checks signatures, through testcontainers) or `auto`: containers when a Docker engine answers. The run's first line says which.",
  DOCKER_HOST: "Docker's own setting: where its engine listens (`unix://…` or `tcp://…`). Unset, npm test asks /var/run/docker.sock, then rootless Docker's and Docker Desktop's sockets.",
  DATABASE_URL: { setByNpmTest: true },
  CUTROOM_TEST_DIR: { setByNpmTest: true },
  // Set by vitest in each of its worker processes: which slice of free ports that worker hands out.
  VITEST_POOL_ID: { setByNpmTest: true },
};

export interface Variable {
  name: string;
  /** Markdown: a value in backticks, or "unset" / "required". */
  default: string;
  description: string;
}

interface Declared {
  comment?: string;
  /** From a `@default` tag: the text shown as is. */
  defaultTag?: string;
  /** The argument of `.default(…)` in the variable's own declaration. */
  defaultArg?: ts.Expression;
  source: ts.SourceFile;
}

const isVariableName = (name: string) => /^[A-Z][A-Z0-9_]*$/.test(name);

/** Every `NAME: z…` property in a TypeScript file, with its JSDoc comment and `.default(…)` argument. */
export function declaredVariables(fileName: string, text: string): Map<string, Declared> {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found = new Map<string, Declared>();
  const visit = (node: ts.Node) => {
    if (ts.isPropertyAssignment(node) && (ts.isIdentifier(node.name) || ts.isStringLiteral(node.name)) && isVariableName(node.name.text)) {
      const declared: Declared = { source, defaultArg: defaultArgument(node.initializer) };
      for (const doc of ts.getJSDocCommentsAndTags(node)) {
        if (!ts.isJSDoc(doc)) continue;
        const comment = ts.getTextOfJSDocComment(doc.comment);
        if (comment) declared.comment = oneLine(comment);
        for (const tag of doc.tags ?? []) {
          if (tag.tagName.text === "default") declared.defaultTag = oneLine(ts.getTextOfJSDocComment(tag.comment) ?? "");
        }
      }
      if (!found.has(node.name.text)) found.set(node.name.text, declared);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The argument of the outermost `.default(…)` call in a chain like `z.string().default("x").transform(f)`. */
function defaultArgument(expr: ts.Expression): ts.Expression | undefined {
  let node: ts.Node = expr;
  while (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
    if (node.expression.name.text === "default") return node.arguments[0];
    node = node.expression.expression;
  }
  return undefined;
}

const oneLine = (text: string) => text.replace(/\s+/g, " ").trim();

/** Literals and arithmetic only (`30 * 24 * 60 * 60`): safe to evaluate, and the same on every machine. */
function isConstant(node: ts.Node): boolean {
  if (ts.isIdentifier(node) || ts.isCallExpression(node) || ts.isPropertyAccessExpression(node) || ts.isNewExpression(node) || ts.isTemplateExpression(node)) return false;
  let constant = true;
  ts.forEachChild(node, (child) => {
    if (!isConstant(child)) constant = false;
  });
  return constant;
}

function formatValue(value: unknown): string {
  if (value === "") return "empty";
  if (typeof value === "string") return `\`${value}\``;
  if (typeof value === "number" || typeof value === "boolean") return `\`${value}\``;
  return `\`${JSON.stringify(value)}\``;
}

function renderDefault(_name: string, field: z.ZodType, declared: Declared | undefined): string {
  if (declared?.defaultTag) return declared.defaultTag;
  const arg = declared?.defaultArg;
  if (arg) {
    const text = arg.getText(declared.source);
    // Evaluated only when it is made of literals: the value a user would type, before any transform.
    if (isConstant(arg)) return formatValue(new Function(`return (${text});`)());
    return `computed: \`${oneLine(text)}\``;
  }
  const parsed = field.safeParse(undefined);
  if (!parsed.success) return "required";
  return parsed.data === undefined ? "unset" : formatValue(parsed.data);
}

/** The object inside a schema that may have been refined or piped into a transform. */
function objectOf(schema: z.ZodType): z.ZodObject {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodPipe) s = s.in as z.ZodType;
  if (!(s instanceof z.ZodObject)) throw new Error("not a zod object schema");
  return s;
}

/** One row per variable of `schema`, described from `.describe()`/`.meta()` or else its JSDoc in `files` (first wins). */
export function variablesOf(schema: z.ZodType, files: string[], only?: (name: string, field: z.ZodType) => boolean): Variable[] {
  const declared = new Map<string, Declared>();
  for (const file of files) {
    for (const [name, d] of declaredVariables(file, readFileSync(join(root, file), "utf8"))) if (!declared.has(name)) declared.set(name, d);
  }
  return Object.entries(objectOf(schema).shape)
    .filter(([name, field]) => !only || only(name, field as z.ZodType))
    .map(([name, f]) => {
      const field = f as z.ZodType;
      const description = field.description ?? declared.get(name)?.comment;
      if (!description) throw new Error(`${name} has no description: give it a /** comment */ in ${files[0]}`);
      return { name, default: renderDefault(name, field, declared.get(name)), description };
    });
}

/** `process.env.X ?? "literal"` and bare `process.env.X` reads in npm test's own sources. */
export function testRunVariables(): Variable[] {
  const reads = new Map<string, string>();
  const files = testSources.flatMap((p) => {
    const full = join(root, p);
    if (!existsSync(full)) return [];
    if (p.endsWith(".ts")) return [full];
    return readdirSync(full, { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
      .sort()
      .map((f) => join(full, f));
  });
  // In testSources' order, so npm test's own fallback (scripts/test.ts) wins over a library's.
  for (const file of files) {
    for (const m of readFileSync(file, "utf8").matchAll(/process\.env\.([A-Z][A-Z0-9_]*)(?:\s*\?\?\s*"([^"]*)")?/g)) {
      const [, name, fallback] = m as unknown as [string, string, string | undefined];
      if (!reads.has(name) || (reads.get(name) === "unset" && fallback !== undefined)) reads.set(name, fallback === undefined ? "unset" : formatValue(fallback));
      if (!(name in testVariables)) throw new Error(`npm test reads ${name} (${relative(root, file)}): describe it in testVariables in scripts/env-doc.ts`);
    }
  }
  return [...reads]
    .flatMap(([name, fallback]) => {
      const entry = testVariables[name];
      return typeof entry === "string" ? [{ name, default: fallback, description: entry }] : [];
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

function table(rows: Variable[]): string {
  // Pipes would end the cell; `<v>` outside a code span would be read as an HTML tag.
  const cell = (s: string) =>
    s
      .split("`")
      .map((part, i) => (i % 2 === 0 ? part.replace(/</g, "&lt;") : part))
      .join("`")
      .replace(/\|/g, "\\|");
  return ["| variable | default | description |", "| --- | --- | --- |", ...rows.map((r) => `| \`${r.name}\` | ${cell(r.default)} | ${cell(r.description)} |`)].join("\n");
}

const importSchema = async (file: string, exportName: string): Promise<z.ZodType> => {
  const mod = (await import(pathToFileURL(join(root, file)).href)) as Record<string, unknown>;
  const schema = mod[exportName];
  if (!(schema instanceof z.ZodType)) throw new Error(`${file} does not export a zod schema named ${exportName}`);
  return schema;
};

/** The whole of docs/CONFIGURATION.md. */
export async function renderConfiguration(): Promise<string> {
  const { BaseEnv } = (await import(pathToFileURL(join(root, "packages/runtime/src/env.ts")).href)) as { BaseEnv: z.ZodObject };
  // Shared only while it is BaseEnv's very field: an app that redefines one lists it as its own.
  const isShared = (name: string, field: z.ZodType) => BaseEnv.shape[name] === field;

  const apps = readdirSync(join(root, "apps"), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const sections: string[] = [];
  const workers: string[] = [];
  for (const app of apps) {
    const envFile = `apps/${app}/src/env.ts`;
    const server = join(root, "apps", app, "src", "server.ts");
    // A web app built to static files (the dashboard) runs in the browser: no process reads settings.
    if (!existsSync(server) && existsSync(join(root, "apps", app, "index.html"))) continue;
    if (!existsSync(join(root, envFile))) {
      if (existsSync(server) && readFileSync(server, "utf8").includes("runWorker")) workers.push(app);
      else throw new Error(`apps/${app} has no src/env.ts and is not a runWorker worker: where is its configuration?`);
      continue;
    }
    const rows = variablesOf(await importSchema(envFile, "Env"), [envFile, ...sharedEnvFiles], (n, f) => !isShared(n, f));
    sections.push(`### ${app}\n\n${rows.length > 0 ? table(rows) : "Nothing beyond the variables every app reads."}`);
  }
  if (workers.length > 0) {
    const file = "packages/worker-runtime/src/env.ts";
    const rows = variablesOf(await importSchema(file, "WorkerEnv"), [file, ...sharedEnvFiles], (n, f) => !isShared(n, f));
    sections.push(`### ${workers.join(", ")}\n\nThe workers share one schema (\`WorkerEnv\` in ${file}).\n\n${table(rows)}`);
  }

  const startFile = "packages/devstack/src/start-env.ts";
  const start = existsSync(join(root, startFile))
    ? table(variablesOf(await importSchema(startFile, "StartEnv"), [startFile]))
    : "TODO(env-doc): npm start's variables come from `StartEnv` in packages/devstack/src/start-env.ts, which does not exist yet.";

  return `# Configuration

Every variable each process reads, generated from the zod schemas that parse them (each app's
\`src/env.ts\`), so this page cannot drift from the code. Do not edit it by hand: change the
schema's \`/** comment */\` or default, then run \`npm run env:doc\`.

Defaults serve the embedded stack of \`npm start\`. An app refuses to start, naming the variable,
when a value is invalid.

## Every app

Every service and worker reads these (\`BaseEnv\` in packages/runtime/src/env.ts).

${table(variablesOf(BaseEnv, sharedEnvFiles))}

## Per app

${sections.join("\n\n")}

## npm start

\`npm start\` reads these itself (\`StartEnv\` in ${startFile}) and sets the apps' variables from them.

${start}

## npm test

\`npm test\` starts its own servers and sets every app variable itself; it reads only these.

${table(testRunVariables())}
`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  writeFileSync(docPath, await renderConfiguration());
  console.log(`wrote ${relative(root, docPath)}`);
}
