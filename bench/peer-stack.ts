// The stack a team would build instead of Cutroom, as the benchmarks start and stop it:
// Debian's redis-server on a free port with a folder of its own, a database of its own on the
// bench's Postgres (the same server and settings as Cutroom's), the API process (peer-api.ts)
// and, when asked, the BullMQ worker process (peer-worker.ts). Tokens are Ed25519 JWTs signed here.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GiveUp, freePort, stopChild, waitFor } from "@cutroom/devstack";
import { createSigner } from "fast-jwt";
import postgres from "postgres";
import { createDatabase } from "./lib.ts";

const QUEUE = "thumbnail";

export interface PeerStack {
  url: string;
  /** The peer's own database, e.g. to count finished jobs. */
  sql: postgres.Sql;
  /** An access token for `userId` (any uuid: the peer has no accounts). */
  token: (userId: string) => string;
  /** Puts `bytes` where the worker reads inputs; returns the file id to put in a job's input. */
  addFile: (bytes: Uint8Array) => string;
  /** Starts the worker process; resolves once it is connected, taking jobs at once unless `run: false`. */
  startWorker: (opts?: { run?: boolean }) => Promise<{ run: () => void; pid: number }>;
  stop: () => Promise<void>;
}

// Peer stacks not stopped yet: the bench stops them after a benchmark that failed or timed out, and on Ctrl-C.
const running = new Set<() => Promise<void>>();

/** Stops every peer stack still running (redis-server would outlive the bench otherwise). */
export async function stopPeerStacks(): Promise<void> {
  await Promise.all([...running].map((stop) => stop()));
}

/** Debian's redis-server, installed when missing and we are root. */
export function ensureRedis(log: (line: string) => void): void {
  if (spawnSync("sh", ["-c", "command -v redis-server"], { stdio: "ignore" }).status === 0) return;
  if (process.getuid?.() !== 0 || spawnSync("sh", ["-c", "command -v apt-get"], { stdio: "ignore" }).status !== 0) {
    throw new Error("the benchmarks' peer needs redis-server: install it (Debian: apt-get install -y redis-server) and run again");
  }
  log("installing redis-server from Debian packages…");
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  execFileSync("apt-get", ["install", "-y", "-qq", "redis-server"], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
}

/**
 * redis-server as BullMQ's documentation asks for production: append-only file synced every
 * second (about what JetStream's file store does by default), no eviction, no RDB snapshots.
 */
async function startRedis(dir: string): Promise<{ port: number; child: ChildProcess }> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--daemonize", "no"];
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let ready = false;
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.on("data", (d) => {
      output = (output + d).slice(-4000);
      ready ||= output.includes("Ready to accept connections");
    });
  }
  await waitFor(
    "redis-server",
    async () => {
      if (child.exitCode !== null) throw new GiveUp(`redis-server exited: ${output}`);
      return ready;
    },
    15_000,
    20,
  );
  return { port, child };
}

function spawnPeer(script: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, script)], { env: { ...process.env, ...env }, stdio: ["ignore", "inherit", "inherit", "ipc"] });
}

function firstMessage<T>(child: ChildProcess, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    child.once("message", (m) => resolve(m as T));
    child.once("exit", (code) => reject(new Error(`${what} exited with ${code}`)));
  });
}

export async function startPeerStack(opts: {
  /** The bench's Postgres server (any database on it): the peer gets a database of its own there. */
  postgresUrl: string;
  name: string;
  dir: string;
  /** The worker's concurrency: the same as Cutroom's worker-image in the same benchmark. */
  concurrency: number;
}): Promise<PeerStack> {
  const children: ChildProcess[] = [];
  const filesDir = join(opts.dir, "files");
  mkdirSync(join(filesDir, "in"), { recursive: true });
  const databaseUrl = await createDatabase(opts.postgresUrl, `bench_peer_${opts.name.replaceAll("-", "_")}`);
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  const stop = async () => {
    running.delete(stop);
    await Promise.all(children.map((c) => stopChild(c)));
    await sql.end();
  };
  running.add(stop);
  try {
    await sql`
      create table peer_jobs (
        id uuid primary key,
        user_id uuid not null,
        idempotency_key text,
        type text not null,
        input jsonb not null,
        status text not null,
        result jsonb,
        error text,
        created_at timestamptz not null default now(),
        started_at timestamptz,
        completed_at timestamptz,
        unique (user_id, idempotency_key)
      )`;
    // What a job list (GET /jobs of a user, newest first) would need.
    await sql`create index peer_jobs_user_idx on peer_jobs (user_id, created_at desc)`;

    const redis = await startRedis(join(opts.dir, "redis"));
    children.push(redis.child);
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const sign = createSigner({ algorithm: "EdDSA", key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), iss: "peer", expiresIn: 3_600_000 });
    const env = { PEER_DATABASE_URL: databaseUrl, PEER_REDIS_PORT: String(redis.port), PEER_QUEUE: QUEUE };

    const api = spawnPeer("peer-api.ts", { ...env, PEER_JWT_PUBLIC_KEY: publicKey.export({ type: "spki", format: "pem" }).toString() });
    children.push(api);
    const { port } = await firstMessage<{ port: number }>(api, "the peer's API");

    return {
      url: `http://127.0.0.1:${port}`,
      sql,
      token: (userId) => sign({ sub: userId }),
      addFile: (bytes) => {
        const id = randomUUID();
        writeFileSync(join(filesDir, "in", id), bytes);
        return id;
      },
      startWorker: async ({ run = true } = {}) => {
        const worker = spawnPeer("peer-worker.ts", { ...env, PEER_FILES_DIR: filesDir, PEER_CONCURRENCY: String(opts.concurrency) });
        children.push(worker);
        await firstMessage(worker, "the peer's worker");
        const go = () => worker.send("run");
        if (run) go();
        return { run: go, pid: worker.pid! };
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
