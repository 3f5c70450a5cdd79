import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import postgres from "postgres";
import { natsAuthConfig, type NatsLogins } from "./nats-auth.ts";
import { GiveUp, portOpen, waitFor } from "./wait.ts";

export interface Server {
  url: string;
  stop: () => Promise<void>;
}

const isRoot = () => process.getuid?.() === 0;

/** Runs a command as the `postgres` user when we are root (Postgres refuses to run as root). */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return isRoot() ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

function chownTree(dir: string) {
  if (isRoot()) execFileSync("chown", ["-R", "postgres:postgres", dir]);
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => (clearTimeout(t), resolve()));
    child.kill(signal);
  });
}

/**
 * A Postgres server of our own in `dataDir` (initialised on first use, kept after),
 * listening on 127.0.0.1:`port`, with trust auth for the local `postgres` user.
 */
export async function startPostgres(opts: { pgBin: string; dataDir: string; port: number; database: string; fast?: boolean; log?: (l: string) => void }): Promise<Server> {
  const { pgBin, dataDir, port } = opts;
  const socketDir = join(dataDir, "..", `pg-socket-${port}`);
  mkdirSync(socketDir, { recursive: true });
  chownTree(socketDir);
  if (!existsSync(join(dataDir, "PG_VERSION"))) {
    mkdirSync(dataDir, { recursive: true });
    chownTree(dataDir);
    const [cmd, args] = asPostgres(join(pgBin, "initdb"), ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"]);
    try {
      execFileSync(cmd, args, { stdio: "pipe" });
    } catch (err) {
      const out = String((err as { stderr?: Buffer }).stderr ?? "").trim();
      const hint = isRoot() ? ` (initdb runs as the postgres user: every folder above ${dataDir} must be searchable by it)` : "";
      throw new Error(`initdb failed${hint}: ${out || (err as Error).message}`);
    }
  }
  const settings = ["-p", String(port), "-k", socketDir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"];
  if (opts.fast) settings.push("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off");
  const [cmd, args] = asPostgres(join(pgBin, "postgres"), ["-D", dataDir, ...settings]);
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await waitFor(
    "postgres",
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new GiveUp(`postgres exited: ${stderr}`);
      const sql = postgres(adminUrl, { max: 1, connect_timeout: 2, onnotice: () => {} });
      try {
        // The server on this port must be ours (another stack's Postgres may hold the port).
        const [row] = await sql`select current_setting('data_directory') as dir`;
        if (realpathSync(row!.dir as string) !== realpathSync(dataDir)) throw new GiveUp(`port ${port} is served by another Postgres (${row!.dir as string})`);
        return true;
      } finally {
        await sql.end();
      }
    },
    30_000,
    200,
  );
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  const [exists] = await sql`select 1 from pg_database where datname = ${opts.database}`;
  if (!exists) await sql.unsafe(`create database ${opts.database}`);
  await sql.end();
  return { url: `postgres://postgres@127.0.0.1:${port}/${opts.database}`, stop: () => stopPostgres(dataDir, child) };
}

/**
 * Fast shutdown, signalled to the postmaster itself: when we are root, `child` is only the
 * `runuser` wrapper, which does not pass signals on.
 */
async function stopPostgres(dataDir: string, child: ChildProcess): Promise<void> {
  const pidFile = join(dataDir, "postmaster.pid");
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").split("\n")[0]) : NaN;
  if (Number.isInteger(pid) && pid > 0) {
    try {
      process.kill(pid, "SIGINT");
      await waitFor("postgres to stop", async () => !isAlive(pid), 20_000, 50);
    } catch {
      if (isAlive(pid)) process.kill(pid, "SIGKILL");
    }
  }
  await stopChild(child, "SIGINT", 2_000);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * `nats-server -js` with its store in `storeDir`. With `logins`, only those users get in, each
 * app with its own permissions: the config goes to `<storeDir>.conf`, rewritten at each start.
 */
export async function startNats(opts: { storeDir: string; port: number; logins?: NatsLogins; logFile?: string }): Promise<Server & { logins?: NatsLogins }> {
  mkdirSync(opts.storeDir, { recursive: true });
  const args = ["-js", "-sd", opts.storeDir, "-a", "127.0.0.1", "-p", String(opts.port)];
  if (opts.logins) {
    const configFile = `${opts.storeDir}.conf`;
    writeFileSync(configFile, natsAuthConfig(opts.logins), { mode: 0o600 });
    args.push("-c", configFile);
  }
  const child = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
  // The server's own account of refused connections and permission violations.
  if (opts.logFile) {
    mkdirSync(dirname(opts.logFile), { recursive: true });
    child.stderr!.pipe(createWriteStream(opts.logFile, { flags: "a" }));
  }
  let stderr = "";
  let ready = false;
  child.stderr!.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
    // Our own server's word, not an open port: a port held by another stack's server must not count.
    if (stderr.includes("Server is ready")) ready = true;
  });
  await waitFor("nats-server", async () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new GiveUp(`nats-server exited: ${stderr.trim().split("\n").slice(-3).join(" ")}`);
    return ready && (await portOpen(opts.port));
  });
  return { url: `nats://127.0.0.1:${opts.port}`, logins: opts.logins, stop: () => stopChild(child) };
}

/** s3rver, an S3-compatible server, for the storage driver's tests. */
export async function startS3rver(opts: { dir: string; port: number; bucket: string }): Promise<Server & { bucket: string }> {
  mkdirSync(opts.dir, { recursive: true });
  const { default: S3rver } = (await import("s3rver" as string)) as { default: new (o: object) => { run(): Promise<unknown>; close(): Promise<void> } };
  const corsConfig = `<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>*</AllowedHeader></CORSRule></CORSConfiguration>`;
  const server = new S3rver({
    port: opts.port,
    address: "127.0.0.1",
    directory: opts.dir,
    silent: true,
    configureBuckets: [{ name: opts.bucket, configs: [corsConfig] }],
  });
  await server.run();
  writeFileSync(join(opts.dir, ".cutroom"), "s3rver data\n");
  return { url: `http://127.0.0.1:${opts.port}`, bucket: opts.bucket, stop: () => server.close() };
}
