import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { Agent, request } from "node:http";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { basename, join } from "node:path";
import type { AppName, Stack } from "@cutroom/devstack";
import postgres from "postgres";
import WebSocket from "ws";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every millisecond until it returns a value; the callers time their events themselves. */
export async function until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles of latencies in ms. */
export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
  return { n: sorted.length, p50: at(50), p99: at(99), max: sorted.at(-1) ?? NaN };
}

export const median = (values: number[]) => summarize(values).p50;

/** One line of a benchmark's table: the ratio Cutroom ÷ peer first, then both absolute figures. */
export interface Row {
  measure: string;
  cutroom: number;
  peer: number;
  unit: string;
}

export interface BenchResult {
  /** What the peer is, in a few words. */
  peer: string;
  rows: Row[];
  /** Context: sample sizes, what was left out, anything a reader needs to trust the rows. */
  notes: string[];
}

const fmtRatio = (r: number) => (r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(2) : r.toPrecision(2));
const fmt = (v: number) => (!Number.isFinite(v) ? "—" : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** A Markdown table, so the printed output can be pasted into docs/PERFORMANCE.md as it is. */
export function formatTable(result: BenchResult): string {
  const lines = [
    `| measure | ratio (Cutroom ÷ peer) | Cutroom | ${result.peer} |`,
    "| --- | --- | --- | --- |",
    ...result.rows.map((r) => `| ${r.measure} | ${fmtRatio(r.cutroom / r.peer)}× | ${fmt(r.cutroom)} ${r.unit} | ${fmt(r.peer)} ${r.unit} |`),
  ];
  return [...lines, "", ...result.notes.map((n) => `- ${n}`)].join("\n");
}

export interface LoadResult {
  errors: number;
  firstError?: string;
  elapsedMs: number;
  latencies: number[];
}

/** Several load runs as one: requests per second over their summed time, and their latencies. */
export function combineLoads(runs: LoadResult[]) {
  const latencies = runs.flatMap((r) => r.latencies);
  const elapsedMs = runs.reduce((sum, r) => sum + r.elapsedMs, 0);
  const errors = runs.reduce((sum, r) => sum + r.errors, 0);
  return { requests: latencies.length, elapsedMs, errors, firstError: runs.find((r) => r.firstError)?.firstError, perSecond: (latencies.length / elapsedMs) * 1000, latency: summarize(latencies) };
}

/**
 * Closed-loop HTTP load: `concurrency` keep-alive connections, each sending the next request
 * as soon as the last answered, until `maxRequests` were sent or `maxMs` passed.
 */
export async function runLoad(opts: {
  url: string;
  concurrency: number;
  maxRequests: number;
  maxMs: number;
  expectStatus: number;
  request: (i: number) => { method: string; path: string; headers: Record<string, string>; body: string };
}): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const base = new URL(opts.url);
  const latencies: number[] = [];
  let sent = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const deadline = started + opts.maxMs;

  const once = (i: number) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = opts.request(i);
      const req = request({ host: base.hostname, port: base.port, method: r.method, path: r.path, headers: r.headers, agent }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end(r.body);
    });

  const loop = async () => {
    while (sent < opts.maxRequests && performance.now() < deadline) {
      const i = sent++;
      const t0 = performance.now();
      const res = await once(i).catch((err: Error) => ({ status: 0, body: err.message }));
      latencies.push(performance.now() - t0);
      if (res.status !== opts.expectStatus) {
        errors++;
        firstError ??= `${res.status} ${res.body.slice(0, 300)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  const elapsedMs = performance.now() - started;
  agent.destroy();
  return { errors, firstError, elapsedMs, latencies };
}

// The peers' processes by their script, as cpuTimeByProcess names them.
const peerProcesses: Record<string, string> = { "peer-server": "ws-server", "peer-api": "peer-api", "peer-worker": "peer-worker", "peer-upload": "upload-peer" };

/**
 * CPU time (ms) used so far by this process and everything it started, by who: an app's
 * processes by their folder (apps run from apps/<name>), others by their command name.
 */
export function cpuTimeByProcess(): Map<string, number> {
  const tickMs = 1000 / Number(execFileSync("getconf", ["CLK_TCK"]).toString());
  const procs = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).flatMap((pid) => {
    try {
      // comm may hold spaces and parentheses: the fields after the last ")" are fixed.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const [, comm = ""] = /\((.*)\)/s.exec(stat) ?? [];
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return [{ pid: Number(pid), comm, ppid: Number(fields[1]), cpuMs: (Number(fields[11]) + Number(fields[12])) * tickMs }];
    } catch {
      return [];
    }
  });
  const children = new Map<number, typeof procs>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const byName = new Map<string, number>();
  // Helpers such as tsx's esbuild count for the process that started them.
  const ownName = (p: (typeof procs)[number]) => {
    if (["ffmpeg", "ffprobe", "nats-server", "postgres", "redis-server"].includes(p.comm)) return p.comm;
    if (p.comm !== "node") return undefined;
    const cwd = safeRead(() => readlinkSync(`/proc/${p.pid}/cwd`));
    if (cwd?.includes("/apps/")) return basename(cwd);
    const cmdline = safeRead(() => readFileSync(`/proc/${p.pid}/cmdline`, "utf8")) ?? "";
    return Object.entries(peerProcesses).find(([script]) => cmdline.includes(script))?.[1];
  };
  const visit = (pid: number, label: string) => {
    for (const p of children.get(pid) ?? []) {
      const name = ownName(p) ?? label;
      byName.set(name, (byName.get(name) ?? 0) + p.cpuMs);
      visit(p.pid, name);
    }
  };
  const self = procs.find((p) => p.pid === process.pid);
  byName.set("bench", self?.cpuMs ?? 0);
  visit(process.pid, "bench");
  return byName;
}

function safeRead(read: () => string): string | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

/** CPU ms spent by each process since the `before` reading. */
export function cpuSpent(before: Map<string, number>): Map<string, number> {
  return new Map([...cpuTimeByProcess()].map(([name, ms]) => [name, ms - (before.get(name) ?? 0)]));
}

/** CPU ms spent by each process (or by those `only` names), per unit of work, busiest first. */
export function cpuPerUnit(spent: Map<string, number>, units: number, only?: string[]): string {
  return [...spent]
    .filter(([name]) => !only || only.includes(name))
    .map(([name, ms]) => [name, ms / units] as const)
    .filter(([, ms]) => ms >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([name, ms]) => `${name} ${ms.toFixed(ms >= 1 ? 1 : 2)}`)
    .join(", ");
}

export interface Reply {
  status: number;
  body: any;
}

/** The few API calls the benchmarks need, as a client would make them. */
export function createApi(baseUrl: string) {
  const call = async (method: string, path: string, opts: { token?: string; json?: unknown } = {}): Promise<Reply> => {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.json !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${baseUrl}/api/v1${path}`, { method, headers, body: opts.json === undefined ? undefined : JSON.stringify(opts.json) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const expect = async (status: number, what: string, reply: Promise<Reply>) => {
    const r = await reply;
    if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const password = "bench horse battery staple";

  const api = {
    call,
    expect,
    async register(email: string) {
      const reg = await expect(201, "register", call("POST", "/auth/register", { json: { email, password, full_name: "Bench" } }));
      return reg.user_id as string;
    },
    async login(email: string) {
      const login = await expect(200, "login", call("POST", "/auth/login", { json: { email, password } }));
      return login.access_token as string;
    },
    /** Signed upload: ticket, PUT the bytes, confirm. Returns the file id. */
    async upload(token: string, filename: string, contentType: string, bytes: Uint8Array) {
      const ticket = await expect(201, "upload ticket", call("POST", "/uploads", { token, json: { filename, content_type: contentType, size: bytes.byteLength } }));
      const put = await fetch(ticket.upload_url, { method: "PUT", headers: ticket.headers, body: bytes });
      if (!put.ok) throw new Error(`upload PUT: ${put.status} ${await put.text()}`);
      const confirmed = await expect(200, "upload confirm", call("POST", `/uploads/${ticket.file_id}/confirm`, { token, json: {} }));
      return confirmed.file.id as string;
    },
    /**
     * A user on the enterprise tier with `credits` more credits: the free tier's 10 jobs a minute
     * would measure the rate limiter, not the pipeline. The tier is in the token, hence the second login.
     */
    async enterpriseUser(adminToken: string, credits: number) {
      const email = `bench-${randomUUID()}@bench.cutroom.test`;
      const id = await api.register(email);
      await expect(200, "set tier", call("PATCH", `/admin/users/${id}`, { token: adminToken, json: { tier: "enterprise" } }));
      await expect(200, "grant credits", call("POST", `/admin/users/${id}/credits`, { token: adminToken, json: { amount: credits, note: "benchmark" } }));
      return { id, token: await api.login(email) };
    },
  };
  return api;
}
export type Api = ReturnType<typeof createApi>;

/** Opens a WebSocket and resolves once it is open; `onMessage` sees every text frame. */
export function openSocket(url: string, opts: { headers?: Record<string, string>; onMessage: (text: string) => void }): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: opts.headers });
    ws.on("message", (data) => opts.onMessage(data.toString()));
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** Closes every socket and resolves once all have closed. */
export async function closeAll(sockets: WebSocket[]) {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) return resolve();
          ws.once("close", () => resolve());
          ws.close();
        }),
    ),
  );
}

/**
 * The stack of the WebSocket benchmarks: every app but the workers (jobs stay queued). Their clients
 * belong to a few users, so the per-user cap on connections (20 by default) is raised for the run.
 */
export const wsStack = {
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"],
  env: { WS_MAX_CONNECTIONS_PER_USER: "100000" },
} satisfies Pick<Benchmark, "apps" | "env">;

/** A log event's message in the WebSocket benchmarks: its wave and when it was sent. */
export const wavePayload = (wave: number) => JSON.stringify({ wave, sent: performance.now() });

/**
 * What every client of a WebSocket benchmark measures, whichever server it listens to: snapshots,
 * and per wave of log events (their message a `wavePayload`) the deliveries and their latencies.
 * Waves below 0 are warm-ups: counted, not measured.
 */
export function trackClients(expected: number, waveTimeoutMs: number) {
  const latencies: number[] = [];
  // Per measured wave, the latency of the delivery that completed it (the last client's).
  const waveEnds: number[] = [];
  const counts = new Map<number, number>();
  let lastAt = 0;
  let snapshots = 0;
  const onMessage = (text: string) => {
    const at = performance.now();
    const m = JSON.parse(text) as { type: string; message?: string };
    if (m.type === "snapshot") snapshots++;
    if (m.type !== "log") return;
    const { wave, sent } = JSON.parse(m.message!) as { wave: number; sent: number };
    const n = (counts.get(wave) ?? 0) + 1;
    counts.set(wave, n);
    if (wave < 0) return;
    latencies.push(at - sent);
    lastAt = at;
    if (n === expected) waveEnds.push(at - sent);
  };
  const everyoneGot = (wave: number) => until(() => (counts.get(wave) === expected ? true : undefined), waveTimeoutMs, `all ${expected} clients to get wave ${wave}`);
  return { onMessage, everyoneGot, latencies, waveEnds, lastAt: () => lastAt, snapshots: () => snapshots };
}

export interface Creator {
  token: string;
  fileId: string;
}

/** Enterprise users, each with an uploaded PNG and `credits` credits. */
export function cutroomCreators(api: Api, adminToken: string, png: Uint8Array, users: number, credits: number): Promise<Creator[]> {
  return mapLimit(Array.from({ length: users }), 4, async () => {
    const user = await api.enterpriseUser(adminToken, credits);
    return { token: user.token, fileId: await api.upload(user.token, "in.png", "image/png", png) };
  });
}

/**
 * `jobs` image.thumbnail jobs spread over `users` new enterprise users, with the token of each
 * job's owner. With no workers in the stack they stay queued while a benchmark publishes their events.
 */
export async function queuedJobs(api: Api, adminToken: string, users: number, jobs: number): Promise<{ id: string; token: string }[]> {
  const creators = await cutroomCreators(api, adminToken, makePng(), users, jobs * 10);
  return mapLimit(Array.from({ length: jobs }), 16, async (_, i) => {
    const user = creators[i % users]!;
    const job = await api.expect(202, "create", api.call("POST", "/jobs", { token: user.token, json: { type: "image.thumbnail", input: { file_id: user.fileId, width: 32, height: 32 } } }));
    return { id: job.id as string, token: user.token };
  });
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The bare `ws` server of peer-server.ts in a process of its own, as the gateway has one; resolves with its port. */
export async function startWsPeer(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "peer-server.ts")], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m) => resolve((m as { port: number }).port));
    child.once("exit", (code) => reject(new Error(`the ws peer exited with ${code}`)));
  });
  return { port, child };
}

/** A fresh database `name` on the Postgres server of `serverUrl`; returns its URL. */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop database if exists ${name}`);
  await sql.unsafe(`create database ${name}`);
  await sql.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The soft limit on open files of this process (the stack's and the peers' processes inherit it). */
export function openFilesLimit(): number {
  const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === "unlimited" ? Infinity : Number(soft);
}

/** Resident memory of a process, in KiB. */
export function rssKib(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line?.split(/\s+/)[1] ?? NaN);
}

/** Sums a CPU reading over every process but the bench's own (its clients and timing). */
export const cpuOfServers = (spent: Map<string, number>) => [...spent].reduce((sum, [name, ms]) => (name === "bench" ? sum : sum + ms), 0);

/** Sums a CPU reading over the given process names. */
export const cpuTotal = (spent: Map<string, number>, names: string[]) => names.reduce((sum, n) => sum + (spent.get(n) ?? 0), 0);

/** A small real PNG made by ffmpeg's test source. */
export function makePng(): Uint8Array {
  return new Uint8Array(execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", "-c:v", "png", "-f", "image2pipe", "-"]));
}

/** An H.264 + AAC clip of ffmpeg's test sources, written to `path`. */
export function makeVideo(path: string, seconds: number, size: string): void {
  execFileSync("ffmpeg", [
    "-v", "error", "-y",
    "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=25:duration=${seconds}`,
    "-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`,
    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path,
  ]);
}

export interface BenchContext {
  stack: Stack;
  api: Api;
  /** An admin's access token (the stack's bootstrap admin). */
  adminToken: string;
  /** Scratch folder of this run, removed at the end. */
  dir: string;
  /** The bench's Postgres server (Cutroom's database on it): the peer makes its own database there. */
  postgresUrl: string;
  log: (line: string) => void;
}

export interface Benchmark {
  name: string;
  title: string;
  /** The apps its stack runs (each a process, as in production). */
  apps: readonly AppName[];
  /** Settings of the stack's apps besides the bench's own. */
  env?: Record<string, string>;
  /** How long it may take before the run fails (default 180 s). */
  timeoutMs?: number;
  run: (ctx: BenchContext) => Promise<BenchResult>;
}

/**
 * With `CUTROOM_BENCH_STATEMENTS=1`, the benchmark Postgres loads pg_stat_statements and a benchmark
 * can list what each statement cost per unit of work: `reset` before the part measured, `report`
 * after it. Not set, both do nothing. A count of statements per job does not move with the machine's
 * speed as its CPU figures do.
 */
export const countStatements = process.env.CUTROOM_BENCH_STATEMENTS === "1";

/**
 * Brings the planner's statistics up to date. A benchmark's tables grow from empty in seconds, and a
 * statement prepared while its table was nearly empty keeps a plan that reads the whole table (ADR 051)
 * until autovacuum's next analyze, a minute away by default: a running deployment's tables have them.
 */
export async function analyze(sql: postgres.Sql): Promise<void> {
  await sql.unsafe("analyze");
}

export async function resetStatements(sql: postgres.Sql): Promise<void> {
  if (!countStatements) return;
  await sql.unsafe("create extension if not exists pg_stat_statements");
  await sql.unsafe("select pg_stat_statements_reset()");
}

export async function reportStatements(sql: postgres.Sql, units: number, log: (line: string) => void): Promise<void> {
  if (!countStatements) return;
  // Plans counts the statement's planning (track_planning): a prepared statement on its generic plan is planned once per connection.
  const rows = await sql.unsafe<{ calls: number; total: number; plans: number; plan: number; query: string }[]>(
    "select calls::int, total_exec_time::float8 as total, plans::int, total_plan_time::float8 as plan, query from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database()) order by calls desc limit 25",
  );
  for (const r of rows)
    log(
      `  ${(r.calls / units).toFixed(2).padStart(6)} per unit, ${(r.total / r.calls).toFixed(3)} ms each, planned ${r.plans} times (${(r.plans ? r.plan / r.plans : 0).toFixed(3)} ms each): ${r.query.replace(/\s+/g, " ").slice(0, 120)}`,
    );
  // Whole-table reads since the database was made (a plan that lost its index shows here).
  const scans = await sql.unsafe<{ name: string; seq_scan: number; seq_tup_read: number; idx_scan: number; live: number }[]>(
    "select schemaname || '.' || relname as name, seq_scan::int, seq_tup_read::float8 as seq_tup_read, coalesce(idx_scan, 0)::int as idx_scan, n_live_tup::int as live from pg_stat_user_tables where seq_scan > 0 order by seq_tup_read desc limit 8",
  );
  for (const t of scans) log(`  ${t.name}: ${t.seq_scan} whole-table scans reading ${t.seq_tup_read} rows, ${t.idx_scan} index scans, ${t.live} rows live`);
  // Row updates, and how many were HOT (no index entry written: no indexed column changed, and the page had room).
  const updates = await sql.unsafe<{ name: string; upd: number; hot: number }[]>(
    "select schemaname || '.' || relname as name, n_tup_upd::int as upd, n_tup_hot_upd::int as hot from pg_stat_user_tables where n_tup_upd > 0 order by n_tup_upd desc limit 6",
  );
  for (const t of updates) log(`  ${t.name}: ${(t.upd / units).toFixed(2)} row updates per unit, ${t.hot} of ${t.upd} HOT`);
}
