import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import postgres from "postgres";
import { natsAuthConfig, type NatsLogins } from "./nats-auth.ts";
import { RestartBudget, exitReason, giveUpMessage, type SuperviseOptions } from "./supervise.ts";
import { GiveUp, freePort, portOpen, sleep, waitFor } from "./wait.ts";

export interface Server {
  url: string;
  stop: () => Promise<void>;
  /** Resolves (with how it ended) when the process exits, asked to or not. */
  exited?: Promise<string>;
}

const exitOf = (child: ChildProcess) => new Promise<string>((resolve) => child.once("exit", (code, signal) => resolve(exitReason(code, signal))));

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
export async function startPostgres(opts: { pgBin: string; dataDir: string; port: number; database: string; fast?: boolean; statements?: boolean; log?: (l: string) => void; logFile?: string }): Promise<Server> {
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
  // pg_stat_statements loaded (Debian's postgresql-15 has it): a benchmark can count each statement per job.
  if (opts.statements) settings.push("-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track_planning=on");
  const [cmd, args] = asPostgres(join(pgBin, "postgres"), ["-D", dataDir, ...settings]);
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  const exited = exitOf(child);
  if (opts.logFile) {
    mkdirSync(dirname(opts.logFile), { recursive: true });
    child.stderr!.pipe(createWriteStream(opts.logFile, { flags: "a" }));
  }
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
  return { url: `postgres://postgres@127.0.0.1:${port}/${opts.database}`, exited, stop: () => stopPostgres(dataDir, child) };
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

/** A nats-server's place in a JetStream cluster: its route port and every node's route URL (its own included). */
export interface NatsClusterMember {
  name: string;
  serverName: string;
  port: number;
  routes: string[];
}

/**
 * `nats-server -js` with its store in `storeDir`. With `logins`, only those users get in, each
 * app with its own permissions: the config goes to `<storeDir>.conf`, rewritten at each start.
 */
export async function startNats(opts: { storeDir: string; port: number; logins?: NatsLogins; logFile?: string; cluster?: NatsClusterMember; monitorPort?: number }): Promise<
  Server & { logins?: NatsLogins; exited: Promise<string>; kill: (signal?: NodeJS.Signals) => Promise<void> }
> {
  mkdirSync(opts.storeDir, { recursive: true });
  const args = ["-js", "-sd", opts.storeDir, "-a", "127.0.0.1", "-p", String(opts.port)];
  if (opts.cluster) {
    const { name, serverName, port, routes } = opts.cluster;
    args.push("-n", serverName, "--cluster_name", name, "--cluster", `nats://127.0.0.1:${port}`, "--routes", routes.join(","));
  }
  if (opts.monitorPort) args.push("-m", String(opts.monitorPort));
  if (opts.logins) {
    const configFile = `${opts.storeDir}.conf`;
    writeFileSync(configFile, natsAuthConfig(opts.logins), { mode: 0o600 });
    args.push("-c", configFile);
  }
  const child = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
  const exited = exitOf(child);
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
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { url: `nats://127.0.0.1:${opts.port}`, logins: opts.logins, exited, kill, stop: () => stopChild(child) };
}

/**
 * Keeps a server running: when it exits without `stop`, `start` runs again after a backoff (same
 * ports, same data dir, so Postgres recovers its WAL and nats-server its JetStream store); a crash
 * loop ends in `onGiveUp`. The first start is not retried: its error is the caller's.
 */
export async function superviseServer<S extends Server>(name: string, start: () => Promise<S>, opts: SuperviseOptions & { logFile?: string } = {}): Promise<S> {
  const budget = new RestartBudget(opts);
  budget.started();
  let current = await start();
  let stopping = false;
  const restart = async (reason: string) => {
    while (!stopping) {
      const delay = budget.afterExit();
      if (delay === undefined) return opts.onGiveUp?.(name, giveUpMessage(name, budget.count + 1, reason, opts.logFile, opts));
      opts.onRestart?.(name, reason, delay);
      await sleep(delay);
      if (stopping) return;
      budget.started();
      try {
        const next = await start();
        if (stopping) return void (await next.stop());
        current = next;
        return watch(next);
      } catch (err) {
        reason = (err as Error).message;
      }
    }
  };
  const watch = (server: S) =>
    void server.exited?.then((reason) => {
      if (!stopping && server === current) void restart(reason);
    });
  watch(current);
  return {
    ...current,
    stop: async () => {
      stopping = true;
      await current.stop();
    },
  };
}

export interface NatsCluster {
  /** Every node's client URL, comma-separated: the NATS_URL of the apps. */
  url: string;
  urls: string[];
  logins?: NatsLogins;
  /** NATS_STREAM_REPLICAS for the apps: a copy of each stream on every node. */
  replicas: number;
  /** Stops node `i` (0-based) gracefully; its JetStream store stays for startNode. */
  stopNode: (i: number) => Promise<void>;
  /** Kills node `i` as a crash would (SIGKILL by default). */
  killNode: (i: number, signal?: NodeJS.Signals) => Promise<void>;
  /** Starts node `i` again on its ports and store, and waits until it is back in the cluster. */
  startNode: (i: number) => Promise<void>;
  /**
   * Waits until every running node is current: each replica of every stream and consumer caught up
   * with its leader. A stream's create answers before its followers are; stopping two of three nodes
   * right after it left nats-server 2.9's new group without a leader when they came back.
   */
  current: () => Promise<void>;
  stop: () => Promise<void>;
}

/**
 * A JetStream cluster of `size` (3) nats-servers on loopback, each with its store under `dir`,
 * routes to every node and the same per-app users as startNats.
 */
export async function startNatsCluster(opts: { dir: string; logins?: NatsLogins; size?: number }): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), route: await freePort(), monitor: await freePort() })));
  const routes = ports.map((p) => `nats://127.0.0.1:${p.route}`);
  const nodes: (Awaited<ReturnType<typeof startNats>> | undefined)[] = [];
  const startNode = async (i: number) => {
    if (nodes[i]) throw new Error(`nats node ${i} is running`);
    const node = await startNats({
      storeDir: join(opts.dir, `node-${i + 1}`),
      port: ports[i]!.client,
      monitorPort: ports[i]!.monitor,
      logins: opts.logins,
      logFile: join(opts.dir, "logs", `nats-${i + 1}.log`),
      cluster: { name: "cutroom", serverName: `cutroom-nats-${i + 1}`, port: ports[i]!.route, routes },
    });
    nodes[i] = node;
    void node.exited.then(() => nodes[i] === node && (nodes[i] = undefined));
  };
  // True once healthy; otherwise throws what the node said, which a timed-out wait then reports.
  const healthy = async (i: number) => {
    const res = await fetch(`http://127.0.0.1:${ports[i]!.monitor}/healthz`).catch(() => undefined);
    if (res?.ok) return true;
    throw new Error(res ? `node ${i}'s /healthz: ${res.status} ${(await res.text()).slice(0, 300)}` : `node ${i} does not answer`);
  };
  const stopAll = () => Promise.all(nodes.map((n) => n?.stop()));
  // /healthz answers 200 once the node's JetStream is current with the cluster's meta leader, and
  // each stream and consumer it holds a replica of is current with that one's leader.
  const current = async () => {
    await waitFor("the NATS cluster's JetStream", async () => (await Promise.all(ports.map((_, i) => !nodes[i] || healthy(i)))).every(Boolean), 60_000, 200);
  };
  try {
    await Promise.all(ports.map((_, i) => startNode(i)));
    await current();
  } catch (err) {
    await stopAll();
    throw err;
  }
  const node = (i: number) => {
    if (i < 0 || i >= size) throw new Error(`no nats node ${i}: the cluster has ${size} (0-based)`);
    return nodes[i];
  };
  return {
    url: ports.map((p) => `nats://127.0.0.1:${p.client}`).join(","),
    urls: ports.map((p) => `nats://127.0.0.1:${p.client}`),
    logins: opts.logins,
    replicas: size,
    stopNode: async (i) => {
      const n = node(i);
      nodes[i] = undefined;
      await n?.stop();
    },
    killNode: async (i, signal) => {
      const n = node(i);
      nodes[i] = undefined;
      await n?.kill(signal);
    },
    startNode: async (i) => {
      node(i);
      await startNode(i);
      await waitFor(`nats node ${i} to rejoin the cluster`, () => healthy(i), 60_000, 200);
    },
    current,
    stop: async () => void (await stopAll()),
  };
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
