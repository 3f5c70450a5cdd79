import { stopChild } from "@cutroom/devstack";
import { createEventPublisher } from "@cutroom/runtime";
import { connect } from "@nats-io/transport-node";
import { closeAll, cpuOfServers, cpuPerUnit, cpuSpent, cpuTimeByProcess, mapLimit, openFilesLimit, openSocket, queuedJobs, rssKib, startWsPeer, summarize, trackClients, until, wavePayload as payload, wsStack, type Benchmark } from "./lib.ts";

const JOBS = 1_000;
const CLIENTS_PER_JOB = 10;
const USERS = 10;
const CONNECT_CONCURRENCY = 100;
const CONNECT_TIMEOUT_MS = 150_000;
const WAVE_TIMEOUT_MS = 60_000;
// Sockets this process needs besides the clients: NATS, HTTP, the peer's publisher, stdio.
const SPARE_FDS = 200;

/**
 * 10,000 WebSocket clients on one gateway, 10 on each of 1,000 jobs' `WS /ws/jobs/{id}`; then one
 * event per job published onto the stack's NATS, each reaching its job's 10 clients. Against a bare
 * `ws` server holding the same 10,000 clients, 10 per job path, relaying the same events by job.
 */
export const wsScale: Benchmark = {
  name: "ws-scale",
  title: "4b. WebSocket: 10,000 clients across 1,000 jobs",
  ...wsStack,
  timeoutMs: 300_000,
  async run({ stack, api, adminToken, log }) {
    const limit = openFilesLimit();
    const perJob = Math.min(CLIENTS_PER_JOB, Math.floor((limit - SPARE_FDS) / JOBS));
    if (perJob < 1) throw new Error(`the open files limit (${limit}) is too low for ${JOBS} clients: raise it (ulimit -n) and run again`);
    if (perJob < CLIENTS_PER_JOB) log(`the open files limit (${limit}) allows only ${perJob} clients per job: raise it (ulimit -n 32768) for ${CLIENTS_PER_JOB}`);
    const clients = JOBS * perJob;

    const jobs = await queuedJobs(api, adminToken, USERS, JOBS);
    const slots = jobs.flatMap((job) => Array.from({ length: perJob }, () => job));

    const gatewayPid = stack.services.children.get("gateway")!.pid!;
    const cutroom = trackClients(clients, WAVE_TIMEOUT_MS);
    const wsBase = stack.url.replace(/^http/, "ws");
    const cutroomRss = rssKib(gatewayPid);
    let cpuBefore = cpuTimeByProcess();
    let started = performance.now();
    let sockets = await mapLimit(slots, CONNECT_CONCURRENCY, (job) =>
      openSocket(`${wsBase}/ws/jobs/${job.id}`, { headers: { authorization: `Bearer ${job.token}` }, onMessage: cutroom.onMessage }),
    );
    await until(() => (cutroom.snapshots() === clients ? true : undefined), CONNECT_TIMEOUT_MS, "every client's snapshot");
    const cutroomConnectMs = performance.now() - started;
    const cutroomConnectCpu = cpuSpent(cpuBefore);
    const cutroomRssPer = ((rssKib(gatewayPid) - cutroomRss) * 1024) / clients;
    log(`gateway: ${clients} clients live in ${(cutroomConnectMs / 1000).toFixed(1)} s`);
    const nc = await connect({ ...stack.natsOptions(), name: "bench" });
    const publisher = createEventPublisher(nc);
    let cutroomAllMs: number;
    let publishedMs = NaN;
    let cutroomCpu: Map<string, number>;
    try {
      // The warm-up wave reaching everyone proves every client is past its replay and live.
      const wave = (n: number) => Promise.all(jobs.map((job) => publisher.publish(job.id, { type: "log", level: "info", message: payload(n) })));
      await wave(-1);
      await cutroom.everyoneGot(-1);
      const before = cpuTimeByProcess();
      started = performance.now();
      await wave(0);
      publishedMs = performance.now() - started;
      await cutroom.everyoneGot(0);
      cutroomAllMs = cutroom.lastAt() - started;
      cutroomCpu = cpuSpent(before);
    } finally {
      await closeAll(sockets);
      await nc.close();
    }

    const raw = trackClients(clients, WAVE_TIMEOUT_MS);
    const server = await startWsPeer();
    let seq = 0;
    const event = (jobId: string, wave: number) =>
      JSON.stringify({ job_id: jobId, seq: ++seq, timestamp: new Date().toISOString(), type: "log", level: "info", message: payload(wave) });
    let rawConnectMs: number;
    let rawConnectCpu: Map<string, number>;
    let rawRssPer: number;
    let rawAllMs: number;
    let rawCpu: Map<string, number>;
    try {
      const publish = await openSocket(`ws://127.0.0.1:${server.port}/publish`, { onMessage: () => {} });
      const rawRss = rssKib(server.child.pid!);
      cpuBefore = cpuTimeByProcess();
      started = performance.now();
      sockets = await mapLimit(slots, CONNECT_CONCURRENCY, (job) => openSocket(`ws://127.0.0.1:${server.port}/jobs/${job.id}`, { onMessage: raw.onMessage }));
      rawConnectMs = performance.now() - started;
      rawConnectCpu = cpuSpent(cpuBefore);
      rawRssPer = ((rssKib(server.child.pid!) - rawRss) * 1024) / clients;
      for (const job of jobs) publish.send(event(job.id, -1));
      await raw.everyoneGot(-1);
      const before = cpuTimeByProcess();
      started = performance.now();
      for (const job of jobs) publish.send(event(job.id, 0));
      await raw.everyoneGot(0);
      rawAllMs = raw.lastAt() - started;
      rawCpu = cpuSpent(before);
      publish.close();
      await closeAll(sockets);
    } finally {
      await stopChild(server.child);
    }

    const [c, r] = [summarize(cutroom.latencies), summarize(raw.latencies)];
    return {
      peer: "bare ws server, by job",
      rows: [
        { measure: `connect ${clients} clients`, cutroom: cutroomConnectMs, peer: rawConnectMs, unit: "ms" },
        { measure: "CPU per connection, server processes", cutroom: cpuOfServers(cutroomConnectCpu) / clients, peer: (rawConnectCpu.get("ws-server") ?? NaN) / clients, unit: "ms" },
        { measure: "delivery latency p50", cutroom: c.p50, peer: r.p50, unit: "ms" },
        { measure: "delivery latency p99", cutroom: c.p99, peer: r.p99, unit: "ms" },
        { measure: `all ${clients} deliveries`, cutroom: cutroomAllMs, peer: rawAllMs, unit: "ms" },
        { measure: "server RSS per connection", cutroom: cutroomRssPer / 1024, peer: rawRssPer / 1024, unit: "KiB" },
      ],
      notes: [
        "peer: a `ws` WebSocketServer in a process of its own (no auth, no job lookup, no replay) keeping a set of sockets per /jobs/<id> path and relaying each message that arrives on /publish to the sockets of its `job_id`",
        `${JOBS} jobs (image.thumbnail, no workers, so they stay queued) of ${USERS} enterprise users, ${perJob} clients on each (token in the Authorization header; the gateway's WS_MAX_CONNECTIONS_PER_USER raised for the run); then one log event per job, all ${JOBS} sent at once (Cutroom: createEventPublisher onto JetStream, the publishes started together; peer: sent over one WebSocket), each carrying the time its publish was called, so the latencies include the queue behind the burst; Cutroom's ${JOBS} publishes were all acknowledged by JetStream after ${publishedMs.toFixed(0)} ms`,
        `Cutroom clients count as connected once their snapshot arrived, the peer's once open; a first wave of one event per job reached all ${clients} clients before the measured one`,
        `RSS: the server process's resident memory after all clients connected minus before, per connection (${(cutroomRssPer / 1024).toFixed(1)} KiB gateway, ${(rawRssPer / 1024).toFixed(1)} KiB bare ws; garbage not yet collected counts)`,
        `CPU ms per 1,000 connections (Cutroom: until every snapshot arrived; peer: until open), Cutroom: ${cpuPerUnit(cutroomConnectCpu, clients / 1000)}; peer: ${cpuPerUnit(rawConnectCpu, clients / 1000, ["bench", "ws-server"])}`,
        `CPU ms per 1,000 deliveries (the measured wave), Cutroom: ${cpuPerUnit(cutroomCpu, clients / 1000)}; peer: ${cpuPerUnit(rawCpu, clients / 1000, ["bench", "ws-server"])}`,
        `the clients, the publisher and the timing are all in the bench process; open files limit ${limit} (each side's server holds ${clients} sockets, and so does the bench)`,
      ],
    };
  },
};
