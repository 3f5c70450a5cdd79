import { join } from "node:path";
import { parseArgs } from "node:util";
import { adminCommand, creditsGrant, migrate, queues, tierSet, workersControl, workersList } from "./commands/ops.ts";
import { download, upload } from "./commands/files.ts";
import * as jobs from "./commands/jobs.ts";
import { login, logout, whoami } from "./commands/session.ts";
import { Config } from "./config.ts";
import { Ctx } from "./context.ts";
import { Env } from "./env.ts";
import { exitCodeOf, exitCodes, Output, usageError } from "./output.ts";

// Every option of every command, so one parse knows which take a value; each command then allows its own.
const options = {
  api: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  email: { type: "string" },
  password: { type: "string" },
  name: { type: "string" },
  everywhere: { type: "boolean" },
  input: { type: "string" },
  file: { type: "string" },
  project: { type: "string" },
  detach: { type: "boolean" },
  output: { type: "string", short: "o" },
  status: { type: "string" },
  type: { type: "string" },
  limit: { type: "string" },
  offset: { type: "string" },
  since: { type: "string" },
  note: { type: "string" },
} as const;
type Values = { [K in keyof typeof options]?: (typeof options)[K]["type"] extends "string" ? string : boolean };
const globalOptions = ["api", "json", "help"];

interface Command {
  words: string[];
  /** The positional arguments, as the usage line shows them. */
  args: string[];
  options: (keyof typeof options)[];
  usage: string;
  run: (ctx: Ctx, args: string[], values: Values) => Promise<void>;
}

const commands: Command[] = [
  { words: ["login"], args: [], options: ["email", "password"], usage: "login --email <email> [--password <pw>]   sign in (asks for the password, or reads a line of stdin)", run: (c, _, v) => login(c, v) },
  { words: ["logout"], args: [], options: ["everywhere"], usage: "logout [--everywhere]                     sign out (--everywhere: every session of the account)", run: (c, _, v) => logout(c, v) },
  { words: ["whoami"], args: [], options: [], usage: "whoami                                    who is signed in, role, tier and credits", run: (c) => whoami(c) },
  { words: ["upload"], args: ["file"], options: [], usage: "upload <file>                             resumable upload (run it again to resume)", run: (c, a) => upload(c, a) },
  {
    words: ["run"],
    args: ["type"],
    options: ["input", "file", "project", "detach"],
    usage: "run <type> [--input '<json>'|@file.json] [--file <path>] [--project <id>] [--detach]\n                                            create a job (--file uploads and sets file_id), follow it live; exit 3 unless it succeeds",
    run: (c, a, v) => jobs.run(c, a, v),
  },
  { words: ["jobs", "list"], args: [], options: ["status", "type", "limit", "offset"], usage: "jobs list [--status s] [--type t] [--limit n] [--offset n]", run: (c, _, v) => jobs.list(c, v) },
  { words: ["jobs", "get"], args: ["job-id"], options: [], usage: "jobs get <job-id>", run: (c, a) => jobs.get(c, a) },
  { words: ["jobs", "cancel"], args: ["job-id"], options: [], usage: "jobs cancel <job-id>                      cancel; reserved credits come back", run: (c, a) => jobs.cancel(c, a) },
  { words: ["jobs", "events"], args: ["job-id"], options: ["since"], usage: "jobs events <job-id> [--since n]          the job's stored events (from seq 0), then live ones until it ends", run: (c, a, v) => jobs.events(c, a, v) },
  { words: ["jobs", "requeue"], args: ["job-id"], options: [], usage: "jobs requeue <job-id>                     admin: run a failed job again (credits reserved once)", run: (c, a) => jobs.requeue(c, a) },
  { words: ["download"], args: ["job-or-file-id"], options: ["output"], usage: "download <job-id|file-id> [-o <path>]     a job's result files, or one file", run: (c, a, v) => download(c, a, v) },
  { words: ["migrate"], args: [], options: [], usage: "migrate                                   operator: apply the database migrations (DATABASE_URL)", run: (c) => migrate(c) },
  {
    words: ["create-admin"],
    args: [],
    options: ["email", "password", "name"],
    usage: "create-admin --email <email> [--password <pw>] [--name <name>]\n                                            operator: a new admin account in the database (prints a generated password)",
    run: (c, _, v) => adminCommand(c, "create-admin", v),
  },
  { words: ["promote"], args: [], options: ["email"], usage: "promote --email <email>                   operator: an existing account becomes admin", run: (c, _, v) => adminCommand(c, "promote", v) },
  { words: ["credits", "grant"], args: ["email|user-id", "n"], options: ["note"], usage: "credits grant <email|user-id> <n> [--note text]   admin: give credits", run: (c, a, v) => creditsGrant(c, a, v) },
  { words: ["tier", "set"], args: ["email|user-id", "tier"], options: [], usage: "tier set <email|user-id> <free|pro|enterprise>   admin: change a user's tier", run: (c, a) => tierSet(c, a) },
  { words: ["workers", "list"], args: [], options: [], usage: "workers list                              admin: worker processes and their load", run: (c) => workersList(c) },
  { words: ["workers", "drain"], args: ["worker-id"], options: [], usage: "workers drain <worker-id>                 admin: stop a worker taking jobs (servers with a worker registry)", run: (c, a) => workersControl(c, "drain", a) },
  { words: ["workers", "resume"], args: ["worker-id"], options: [], usage: "workers resume <worker-id>                admin: let a drained worker take jobs again", run: (c, a) => workersControl(c, "resume", a) },
  { words: ["queues"], args: [], options: [], usage: "queues                                    admin: each worker queue's queued, held, running and broker-pending jobs", run: (c) => queues(c) },
];

const help = `cutroom: the Cutroom API from a shell.

usage: cutroom <command> [options]     (npm run -s cutroom -- <command> from the repository)

${commands.map((c) => `  cutroom ${c.usage}`).join("\n")}

options for every command:
  --api <url>     the API (default $CUTROOM_API, else http://127.0.0.1:8000; PORT=9000 npm start serves :9000)
  --json          one JSON document on stdout; errors as the API's envelope {"error": {...}} on stderr
  -h, --help      this text

Tokens from login are kept per API in $XDG_CONFIG_HOME/cutroom/config.json (else ~/.config/cutroom/), mode 0600.
Exit status: 0 done, 1 refused by the API or unreachable, 2 wrong command line, 3 the job failed or was canceled.
`;

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>;
  const json = argv.includes("--json");
  const out = new Output(json);
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true });
  } catch (err) {
    out.error(usageError(`${(err as Error).message}; see cutroom --help`));
    return exitCodes.usage;
  }
  const values = parsed.values as Values;
  const words = parsed.positionals;
  const command = [...commands].sort((a, b) => b.words.length - a.words.length).find((c) => c.words.every((w, i) => words[i] === w));
  if (!command) {
    if (values.help || words.length === 0) {
      process.stdout.write(help);
      return values.help ? exitCodes.ok : exitCodes.usage;
    }
    const group = commands.filter((c) => c.words[0] === words[0]);
    out.error(
      usageError(
        group.length > 0 ? `${words[0]} needs one of: ${group.map((c) => c.words.slice(1).join(" ")).join(", ")}` : `unknown command ${words.join(" ")}; see cutroom --help`,
        { command: words.join(" ") },
      ),
    );
    return exitCodes.usage;
  }
  if (values.help) {
    process.stdout.write(`usage: cutroom ${command.usage}\n`);
    return exitCodes.ok;
  }
  try {
    const args = words.slice(command.words.length);
    if (args.length !== command.args.length) {
      throw usageError(`${command.words.join(" ")} takes ${command.args.map((a) => `<${a}>`).join(" ") || "no arguments"}; usage: cutroom ${command.usage.split("\n")[0]!.replace(/ {3,}.*/, "")}`, { args });
    }
    const allowed = new Set<string>([...globalOptions, ...command.options]);
    const stray = Object.keys(values).filter((k) => !allowed.has(k));
    if (stray.length > 0) throw usageError(`${command.words.join(" ")} takes no --${stray[0]}`, { option: stray[0] });
    const env = Env.safeParse(process.env);
    if (!env.success) throw usageError(`settings: ${env.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    process.chdir(env.data.INIT_CWD);
    const api = parseApi(values.api ?? env.data.CUTROOM_API);
    const ctx = new Ctx(out, api, new Config(join(env.data.XDG_CONFIG_HOME, "cutroom")));
    try {
      await command.run(ctx, args, values);
    } finally {
      await Promise.allSettled(ctx.pending);
    }
    return typeof process.exitCode === "number" ? process.exitCode : exitCodes.ok;
  } catch (err) {
    out.error(err);
    return exitCodeOf(err);
  }
}

/** The API's origin from --api or CUTROOM_API: an http(s) URL, with or without /api/v1. */
function parseApi(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError(`--api must be a URL such as http://127.0.0.1:8000, got ${raw}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw usageError(`--api must be an http or https URL, got ${raw}`);
  return `${url.origin}${url.pathname.replace(/\/+$/, "").replace(/\/api\/v1$/, "")}`;
}

// Exit at once: an idle keep-alive socket or a closing WebSocket must not hold a finished command (stdout to a pipe or file is written synchronously).
process.exit(await main(process.argv.slice(2)));
