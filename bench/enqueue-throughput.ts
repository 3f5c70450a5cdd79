import { stopChild } from "@cutroom/devstack";
import { combineLoads, cpuPerUnit, cpuSpent, cpuTimeByProcess, makePng, mapLimit, median, runLoad, startPeer, type Benchmark, type LoadResult } from "./lib.ts";

const CONCURRENCY = 16;
const ROUNDS = 3;
const MAX_REQUESTS = 2_100;
const MAX_MS = 15_000;
const PEER_ROUND_MS = 2_000;
const WARMUP = 100;
const ALONE_REQUESTS = 200;
// Enterprise allows 300 new jobs a minute per user: spread over 10 users, 2,400 requests never hit it.
const USERS = 10;
const APPS = ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] as const;

/**
 * `POST /api/v1/jobs` (image.resize on an uploaded PNG, authenticated) through the gateway, with
 * no workers so jobs just queue, against a Fastify hello world given the very same requests.
 */
export const enqueueThroughput: Benchmark = {
  name: "enqueue",
  title: "1. Enqueue throughput and latency",
  apps: APPS,
  async run({ stack, api, adminToken, log }) {
    const png = makePng();
    const users = await mapLimit(Array.from({ length: USERS }), 4, async () => {
      const user = await api.enterpriseUser(adminToken, MAX_REQUESTS);
      return { token: user.token, fileId: await api.upload(user.token, "in.png", "image/png", png) };
    });
    const enqueue = (i: number) => {
      const user = users[i % USERS]!;
      return {
        method: "POST",
        path: "/api/v1/jobs",
        headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
        body: JSON.stringify({ type: "image.resize", input: { file_id: user.fileId, width: 32, format: "webp" } }),
      };
    };
    const load = (url: string, maxRequests: number, maxMs: number, concurrency = CONCURRENCY) =>
      runLoad({ url, concurrency, maxRequests, maxMs, expectStatus: 202, request: enqueue });

    const hello = await startPeer("fastify");
    const helloUrl = `http://127.0.0.1:${hello.port}`;
    const runs = { cutroom: [] as LoadResult[], peer: [] as LoadResult[] };
    const cpu = { cutroom: new Map<string, number>(), peer: new Map<string, number>() };
    let alone: Record<"cutroom" | "peer", LoadResult>;
    const measure = async (side: "cutroom" | "peer", work: () => Promise<LoadResult>) => {
      const before = cpuTimeByProcess();
      runs[side].push(await work());
      for (const [name, ms] of cpuSpent(before)) cpu[side].set(name, (cpu[side].get(name) ?? 0) + ms);
    };
    try {
      await load(stack.url, WARMUP, MAX_MS);
      await load(helloUrl, 2_000, PEER_ROUND_MS);
      // Rounds alternate, so a busy spell of the machine falls on both sides.
      for (let round = 0; round < ROUNDS; round++) {
        await measure("cutroom", () => load(stack.url, MAX_REQUESTS / ROUNDS, MAX_MS / ROUNDS));
        await measure("peer", () => load(helloUrl, 100_000, PEER_ROUND_MS));
      }
      // Without a queue in front: what one request costs on an idle stack.
      alone = { cutroom: await load(stack.url, ALONE_REQUESTS, MAX_MS / ROUNDS, 1), peer: await load(helloUrl, ALONE_REQUESTS, MAX_MS / ROUNDS, 1) };
    } finally {
      await stopChild(hello.child);
    }
    const cutroom = combineLoads(runs.cutroom);
    const peer = combineLoads(runs.peer);
    log(`gateway: ${describe(cutroom)}`);
    log(`fastify hello world: ${describe(peer)}`);
    if (cutroom.errors + alone.cutroom.errors > 0) throw new Error(`enqueues failed, first: ${cutroom.firstError ?? alone.cutroom.firstError}`);

    return {
      peer: "Fastify hello world",
      rows: [
        { measure: "throughput", cutroom: cutroom.perSecond, peer: peer.perSecond, unit: "req/s" },
        { measure: "latency p50", cutroom: cutroom.latency.p50, peer: peer.latency.p50, unit: "ms" },
        { measure: "latency p99", cutroom: cutroom.latency.p99, peer: peer.latency.p99, unit: "ms" },
        { measure: "latency p50, one request at a time", cutroom: median(alone.cutroom.latencies), peer: median(alone.peer.latencies), unit: "ms" },
      ],
      notes: [
        `${CONCURRENCY} keep-alive connections, closed loop, ${ROUNDS} alternating rounds after a warm-up; Cutroom ${cutroom.requests} requests in ${(cutroom.elapsedMs / 1000).toFixed(1)} s, peer ${peer.requests} in ${(peer.elapsedMs / 1000).toFixed(1)} s; then ${ALONE_REQUESTS} each on one connection`,
        `Cutroom: every reply 202 with the queued job (${USERS} enterprise users, no workers, so jobs stay queued); peer errors: ${peer.errors}`,
        `CPU ms per request, Cutroom: ${cpuPerUnit(cpu.cutroom, cutroom.requests, ["bench", "postgres", "nats-server", ...APPS])}`,
        `CPU ms per request, peer: ${cpuPerUnit(cpu.peer, peer.requests, ["bench", "peer"])}`,
      ],
    };
  },
};

const describe = (r: ReturnType<typeof combineLoads>) =>
  `${r.requests} requests, ${r.perSecond.toFixed(0)} req/s, p50 ${r.latency.p50.toFixed(1)} ms, p99 ${r.latency.p99.toFixed(1)} ms, ${r.errors} errors`;
