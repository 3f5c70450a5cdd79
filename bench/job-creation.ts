import postgres from "postgres";
import { randomUUID } from "node:crypto";
import { availableParallelism } from "node:os";
import { combineLoads, cpuPerUnit, cpuSpent, cpuTimeByProcess, cpuTotal, cutroomCreators, makePng, median, analyze, reportStatements, resetStatements, runLoad, type Benchmark, type Creator, type LoadResult } from "./lib.ts";
import { startPeerStack, type PeerStack } from "./peer-stack.ts";

// The other benchmarks import them from here.
export { cutroomCreators, type Creator };

const CONCURRENCY = 32;
const ROUNDS = 3;
// Each round ends at whichever comes first, on both sides alike.
const ROUND_REQUESTS = 2_000;
const ROUND_MS = 4_000;
const WARMUP = 200;
const ALONE_REQUESTS = 200;
// Enterprise allows 300 new jobs a minute per user. At most WARMUP + ROUNDS × ROUND_REQUESTS +
// ALONE_REQUESTS = 6,400 requests go to Cutroom, well inside a minute; over 32 users that is 200
// each, so the limit is never reached however fast the stack is.
const USERS = 32;
const APPS = ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] as const;
const CUTROOM_PROCESSES = ["postgres", "nats-server", ...APPS];
const PEER_PROCESSES = ["postgres", "redis-server", "peer-api"];

/** The peer has no accounts: a user is a uuid in a signed token, and a file one on its disk. */
export function peerCreators(peer: PeerStack, png: Uint8Array, users: number): Creator[] {
  return Array.from({ length: users }, () => ({ token: peer.token(randomUUID()), fileId: peer.addFile(png) }));
}

/** `POST /api/v1/jobs`: image.thumbnail of a tiny PNG, authenticated, with a fresh Idempotency-Key. */
export function createJobRequest(creator: Creator) {
  return {
    method: "POST",
    path: "/api/v1/jobs",
    headers: { authorization: `Bearer ${creator.token}`, "content-type": "application/json", "idempotency-key": randomUUID() },
    body: JSON.stringify({ type: "image.thumbnail", input: { file_id: creator.fileId, width: 32, height: 32 } }),
  };
}

/**
 * `POST /api/v1/jobs` (image.thumbnail of an uploaded PNG, authenticated, a fresh Idempotency-Key
 * each) through the gateway, with no workers so jobs just queue, against the peer's Fastify API
 * given the same requests (its worker not running either).
 */
export const jobCreation: Benchmark = {
  name: "job-creation",
  title: "1. Job creation",
  apps: APPS,
  async run({ stack, api, adminToken, dir, postgresUrl, log }) {
    const png = makePng();
    const cutroomUsers = await cutroomCreators(api, adminToken, png, USERS, 1_000);
    const peer = await startPeerStack({ postgresUrl, name: "job-creation", dir, concurrency: availableParallelism() });
    const peerUsers = peerCreators(peer, png, USERS);
    const load = (side: "cutroom" | "peer", maxRequests: number, maxMs: number, concurrency = CONCURRENCY) => {
      const [url, users] = side === "cutroom" ? [stack.url, cutroomUsers] : [peer.url, peerUsers];
      return runLoad({ url, concurrency, maxRequests, maxMs, expectStatus: 202, request: (i) => createJobRequest(users[i % USERS]!) });
    };

    const runs = { cutroom: [] as LoadResult[], peer: [] as LoadResult[] };
    const cpu = { cutroom: new Map<string, number>(), peer: new Map<string, number>() };
    let alone: Record<"cutroom" | "peer", LoadResult>;
    const measure = async (side: "cutroom" | "peer") => {
      const before = cpuTimeByProcess();
      runs[side].push(await load(side, ROUND_REQUESTS, ROUND_MS));
      for (const [name, ms] of cpuSpent(before)) cpu[side].set(name, (cpu[side].get(name) ?? 0) + ms);
    };
    try {
      await load("cutroom", WARMUP, ROUND_MS);
      await load("peer", WARMUP, ROUND_MS);
      const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
      try {
        // Statistics current on both sides, as autovacuum keeps them in a running deployment (ADR 051).
        await Promise.all([analyze(sql), analyze(peer.sql)]);
        await resetStatements(sql);
        // Rounds alternate, so a busy spell of the machine falls on both sides.
        for (let round = 0; round < ROUNDS; round++) {
          await measure("cutroom");
          await measure("peer");
        }
        await reportStatements(sql, combineLoads(runs.cutroom).requests, log);
      } finally {
        await sql.end();
      }
      // Without a queue in front: what one request costs on an idle stack.
      alone = { cutroom: await load("cutroom", ALONE_REQUESTS, ROUND_MS, 1), peer: await load("peer", ALONE_REQUESTS, ROUND_MS, 1) };
    } finally {
      await peer.stop();
    }
    const cutroom = combineLoads(runs.cutroom);
    const peerLoad = combineLoads(runs.peer);
    log(`Cutroom: ${describe(cutroom)}`);
    log(`peer: ${describe(peerLoad)}`);
    const failed = [cutroom.firstError, alone.cutroom.firstError, peerLoad.firstError, alone.peer.firstError].find(Boolean);
    if (failed) throw new Error(`job creations failed, first: ${failed}`);

    return {
      peer: "Fastify + BullMQ",
      rows: [
        { measure: "throughput", cutroom: cutroom.perSecond, peer: peerLoad.perSecond, unit: "req/s" },
        { measure: "latency p50", cutroom: cutroom.latency.p50, peer: peerLoad.latency.p50, unit: "ms" },
        { measure: "latency p99", cutroom: cutroom.latency.p99, peer: peerLoad.latency.p99, unit: "ms" },
        { measure: "latency p50, one request at a time", cutroom: median(alone.cutroom.latencies), peer: median(alone.peer.latencies), unit: "ms" },
        {
          measure: "CPU per request, server processes",
          cutroom: cpuTotal(cpu.cutroom, CUTROOM_PROCESSES) / cutroom.requests,
          peer: cpuTotal(cpu.peer, PEER_PROCESSES) / peerLoad.requests,
          unit: "ms",
        },
      ],
      notes: [
        "peer: Fastify 5 in one process (@fastify/jwt EdDSA check, zod body, postgres.js insert with a unique (user, Idempotency-Key), BullMQ queue.add on Debian's redis-server with an append-only file synced every second), answering 202 with the row; same Postgres server and settings as Cutroom. It does not check that the file exists or is the user's, reserve credits, count a rate limit, apply tier limits, check a token's revocation, or record a queued event; it answers once queue.add returned",
        `${CONCURRENCY} keep-alive connections, closed loop, ${ROUNDS} alternating rounds (each at most ${ROUND_REQUESTS} requests or ${ROUND_MS / 1000} s) after a warm-up of ${WARMUP} each; Cutroom ${cutroom.requests} requests in ${(cutroom.elapsedMs / 1000).toFixed(1)} s, peer ${peerLoad.requests} in ${(peerLoad.elapsedMs / 1000).toFixed(1)} s; then ${ALONE_REQUESTS} each on one connection`,
        `every reply on both sides a 202 with the queued job; requests spread over ${USERS} users (Cutroom: enterprise tier, so its rate limit is never reached); no workers on either side, so jobs stay queued`,
        `CPU ms per request, Cutroom: ${cpuPerUnit(cpu.cutroom, cutroom.requests, ["bench", ...CUTROOM_PROCESSES])}`,
        `CPU ms per request, peer: ${cpuPerUnit(cpu.peer, peerLoad.requests, ["bench", ...PEER_PROCESSES])}`,
        "the CPU row sums the server processes (the client, `bench`, left out); Postgres serves both sides, so its figure is what it spent while that side ran",
      ],
    };
  },
};

const describe = (r: ReturnType<typeof combineLoads>) =>
  `${r.requests} requests, ${r.perSecond.toFixed(0)} req/s, p50 ${r.latency.p50.toFixed(1)} ms, p99 ${r.latency.p99.toFixed(1)} ms, ${r.errors} errors`;
