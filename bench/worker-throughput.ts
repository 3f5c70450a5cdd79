import { availableParallelism } from "node:os";
import postgres from "postgres";
import { createJobRequest, cutroomCreators, peerCreators } from "./job-creation.ts";
import { cpuPerUnit, cpuSpent, cpuTimeByProcess, cpuTotal, analyze, makePng, reportStatements, resetStatements, runLoad, sleep, type Benchmark } from "./lib.ts";
import { startPeerStack } from "./peer-stack.ts";

const BACKLOG = 2_000;
const CONCURRENCY = availableParallelism();
// 2,000 jobs over 16 enterprise users: 125 each, inside the 300-a-minute limit.
const USERS = 16;
const CREATE_CONNECTIONS = 16;
const DRAIN_TIMEOUT_MS = 240_000;
// The drain is polled at most every MAX_POLL_MS, and as often as every POLL_MS near its end: a count
// every 20 ms throughout cost Postgres 1.6–3 ms per job, counted on the server's side.
const POLL_MS = 20;
const MAX_POLL_MS = 1000;
const APPS = ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"] as const;
const CUTROOM_PROCESSES = ["postgres", "nats-server", ...APPS];
const PEER_PROCESSES = ["postgres", "redis-server", "peer-api", "peer-worker"];

interface Drain {
  /** Jobs that ended between the worker being ready and the last one ending. */
  jobs: number;
  ms: number;
  /** Jobs already ended when the worker said it was ready (Cutroom's worker takes jobs before it says so). */
  beforeReady: number;
  /** From starting the worker's process to the last job's end, boot included. */
  withBootMs: number;
  failed: number;
  /** Polls of the jobs table while draining. */
  polls: number;
  cpu: Map<string, number>;
}

/** Reads a side's jobs table: how many have ended, how many of those failed, and when the last one ended. */
interface JobsTable {
  ended: () => Promise<{ ended: number; failed: number; lastEndedAt: number | null }>;
}

/**
 * Starts the worker (`start` resolves once it is connected, with what makes it take jobs, if
 * anything), then waits until all `total` jobs have ended. The end is the last job's completed_at in
 * its database (both sides set it with now() as they record the ending), so the time does not depend
 * on how often the table is polled; the polls come about twice in the time the rest should take at
 * the rate so far, between POLL_MS and MAX_POLL_MS.
 */
async function drain(table: JobsTable, total: number, start: () => Promise<(() => void) | undefined>): Promise<Drain> {
  const spawned = performance.now();
  const go = await start();
  const ready = performance.now();
  const readyAt = Date.now();
  const before = cpuTimeByProcess();
  const beforeReady = (await table.ended()).ended;
  go?.();
  for (let polls = 1; ; polls++) {
    const { ended, failed, lastEndedAt } = await table.ended();
    const now = performance.now();
    if (ended >= total) {
      const cpu = cpuSpent(before);
      const ms = Math.max(0, (lastEndedAt ?? readyAt) - readyAt);
      return { jobs: total - beforeReady, ms, beforeReady, withBootMs: ready - spawned + ms, failed, polls, cpu };
    }
    if (now - ready > DRAIN_TIMEOUT_MS) throw new Error(`only ${ended} of ${total} jobs ended within ${DRAIN_TIMEOUT_MS / 1000} s`);
    const perMs = (ended - beforeReady) / (now - ready);
    await sleep(perMs > 0 ? Math.min(MAX_POLL_MS, Math.max(POLL_MS, (total - ended) / perMs / 2)) : MAX_POLL_MS);
  }
}

const jobsTable = (sql: postgres.Sql, table: string): JobsTable => ({
  ended: async () => {
    const [row] = await sql.unsafe<{ ended: number; failed: number; last: Date | null }[]>(
      `select count(*)::int as ended, count(*) filter (where status <> 'succeeded')::int as failed, max(completed_at) as last from ${table} where status in ('succeeded', 'failed', 'canceled')`,
    );
    return { ended: row!.ended, failed: row!.failed, lastEndedAt: row!.last ? new Date(row!.last).getTime() : null };
  },
});

/**
 * A backlog of 2,000 image.thumbnail jobs made with the workers stopped, then the worker started:
 * jobs per second until the last one ended (its completed_at in each side's database), and CPU per job.
 */
export const workerThroughput: Benchmark = {
  name: "worker-throughput",
  title: "3. Worker throughput",
  apps: APPS,
  env: { WORKER_CONCURRENCY: String(CONCURRENCY) },
  timeoutMs: 420_000,
  async run({ stack, api, adminToken, dir, postgresUrl, log }) {
    const png = makePng();
    await stack.services.stop("worker-image");
    const users = await cutroomCreators(api, adminToken, png, USERS, BACKLOG);
    const create = (url: string, request: (i: number) => ReturnType<typeof createJobRequest>) =>
      runLoad({ url, concurrency: CREATE_CONNECTIONS, maxRequests: BACKLOG, maxMs: 120_000, expectStatus: 202, request });
    const made = await create(stack.url, (i) => createJobRequest(users[i % USERS]!));
    if (made.errors > 0) throw new Error(`Cutroom job creation failed: ${made.firstError}`);
    log(`Cutroom: ${BACKLOG} jobs queued in ${(made.elapsedMs / 1000).toFixed(1)} s; starting worker-image`);
    const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
    let cutroom: Drain;
    try {
      // The worker's process takes jobs as soon as it is connected, before it says it is ready.
      // Statistics current, as autovacuum keeps them in a running deployment (ADR 051); the peer's too, below.
      await analyze(sql);
      await resetStatements(sql);
      cutroom = await drain(jobsTable(sql, "jobs.jobs"), BACKLOG, async () => void (await stack.services.start("worker-image")));
      await reportStatements(sql, cutroom.jobs, log);
    } finally {
      await sql.end();
    }
    log(`Cutroom: ${cutroom.jobs} jobs in ${(cutroom.ms / 1000).toFixed(1)} s`);

    const peer = await startPeerStack({ postgresUrl, name: "worker-throughput", dir, concurrency: CONCURRENCY });
    let other: Drain;
    try {
      const peerUsers = peerCreators(peer, png, USERS);
      const peerMade = await create(peer.url, (i) => createJobRequest(peerUsers[i % USERS]!));
      if (peerMade.errors > 0) throw new Error(`peer job creation failed: ${peerMade.firstError}`);
      log(`peer: ${BACKLOG} jobs queued in ${(peerMade.elapsedMs / 1000).toFixed(1)} s; starting its worker`);
      await analyze(peer.sql);
      other = await drain(jobsTable(peer.sql, "peer_jobs"), BACKLOG, async () => (await peer.startWorker({ run: false })).run);
    } finally {
      await peer.stop();
    }
    log(`peer: ${other.jobs} jobs in ${(other.ms / 1000).toFixed(1)} s`);
    if (cutroom.failed + other.failed > 0) throw new Error(`jobs failed: Cutroom ${cutroom.failed}, peer ${other.failed}`);

    const perSecond = (d: Drain) => (d.jobs / d.ms) * 1000;
    return {
      peer: "Fastify + BullMQ",
      rows: [
        { measure: "jobs per second", cutroom: perSecond(cutroom), peer: perSecond(other), unit: "jobs/s" },
        { measure: "CPU per job, all server processes", cutroom: cpuTotal(cutroom.cpu, CUTROOM_PROCESSES) / cutroom.jobs, peer: cpuTotal(other.cpu, PEER_PROCESSES) / other.jobs, unit: "ms" },
      ],
      notes: [
        "peer: the BullMQ Worker process of the tiny-jobs benchmark (sharp in the worker's own process: read the input from local disk, fit into 32×32, write the output to local disk, two progress updates, update the Postgres row), the API process relaying its QueueEvents, redis-server. It does not fetch inputs or upload outputs through a storage service, claim jobs in Postgres, publish or store job events, or capture credits",
        `${BACKLOG} image.thumbnail jobs made through each side's POST /jobs with its worker stopped (Cutroom's worker-image stopped after the stack started; the peer's worker not started), then the worker started with concurrency ${CONCURRENCY} on both sides`,
        `timed from the worker being ready (Cutroom: worker-image announced ready, ${cutroom.beforeReady} jobs had already ended by then and are not counted; the peer: its Worker connected, then told to run) to the last job's completed_at in its database (the table polled ${cutroom.polls} and ${other.polls} times, at most every ${MAX_POLL_MS / 1000} s and every ${POLL_MS} ms near the end); from starting the worker's process, boot included: Cutroom ${(cutroom.withBootMs / 1000).toFixed(1)} s, peer ${(other.withBootMs / 1000).toFixed(1)} s`,
        `every job succeeded on both sides; Cutroom ${cutroom.jobs} jobs in ${(cutroom.ms / 1000).toFixed(1)} s, peer ${other.jobs} in ${(other.ms / 1000).toFixed(1)} s`,
        `CPU ms per job, Cutroom: ${cpuPerUnit(cutroom.cpu, cutroom.jobs, ["bench", ...CUTROOM_PROCESSES])}`,
        `CPU ms per job, peer: ${cpuPerUnit(other.cpu, other.jobs, ["bench", ...PEER_PROCESSES])}`,
        "the CPU row sums the server processes from the worker being ready until the bench saw the last job end (the bench's own process, `bench`, left out; its polls' few queries count under postgres on both sides; Cutroom's sharp processes count as worker-image)",
      ],
    };
  },
};
