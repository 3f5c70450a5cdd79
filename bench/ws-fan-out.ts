import { stopChild } from "@cutroom/devstack";
import { createEventPublisher } from "@cutroom/runtime";
import { connect } from "@nats-io/transport-node";
import { closeAll, cpuOfServers, cpuPerUnit, cpuSpent, cpuTimeByProcess, mapLimit, openFilesLimit, openSocket, queuedJobs, sleep, startWsPeer, summarize, trackClients, until, wavePayload as payload, wsStack, type Benchmark } from "./lib.ts";

const CLIENTS = 1_000;
const EVENTS = 50;
const CONNECT_CONCURRENCY = 50;
const WAVE_TIMEOUT_MS = 15_000;
// Sockets this process needs besides the clients: NATS, HTTP, the peer's publisher, stdio.
const SPARE_FDS = 100;

/**
 * 1,000 WebSocket clients on `WS /ws/jobs/{id}` of one job; job events published onto the stack's
 * NATS, each carrying its send time; per-client receive latency. Against a bare `ws` server that
 * broadcasts the same events to 1,000 clients.
 */
export const wsFanOut: Benchmark = {
  name: "ws-fan-out",
  title: "4a. WebSocket fan-out: 1,000 clients on one job",
  ...wsStack,
  async run({ stack, api, adminToken, log }) {
    const clients = Math.min(CLIENTS, openFilesLimit() - SPARE_FDS);
    if (clients < CLIENTS) log(`open files limit allows only ${clients} clients`);
    const job = (await queuedJobs(api, adminToken, 1, 1))[0]!;
    const nc = await connect({ ...stack.natsOptions(), name: "bench" });
    const publisher = createEventPublisher(nc);

    const cpu = { cutroom: new Map<string, number>(), peer: new Map<string, number>() };
    const connectCpu = { cutroom: new Map<string, number>(), peer: new Map<string, number>() };
    const cutroom = trackClients(clients, WAVE_TIMEOUT_MS);
    const wsUrl = `${stack.url.replace(/^http/, "ws")}/ws/jobs/${job.id}`;
    let cpuBefore = cpuTimeByProcess();
    let started = performance.now();
    let sockets = await mapLimit(Array.from({ length: clients }), CONNECT_CONCURRENCY, () =>
      openSocket(wsUrl, { headers: { authorization: `Bearer ${job.token}` }, onMessage: cutroom.onMessage }),
    );
    await until(() => (cutroom.snapshots() === clients ? true : undefined), 60_000, "every client's snapshot");
    const cutroomConnectMs = performance.now() - started;
    connectCpu.cutroom = cpuSpent(cpuBefore);
    try {
      // The first event reaching everyone proves every client is past its replay and live.
      await publisher.publish(job.id, { type: "log", level: "info", message: payload(-1) });
      await cutroom.everyoneGot(-1);
      const before = cpuTimeByProcess();
      for (let i = 0; i < EVENTS; i++) {
        await publisher.publish(job.id, { type: "log", level: "info", message: payload(i) });
        await cutroom.everyoneGot(i);
        await sleep(20);
      }
      cpu.cutroom = cpuSpent(before);
    } finally {
      await closeAll(sockets);
      await nc.close();
    }
    log(`gateway: ${clients} clients live in ${(cutroomConnectMs / 1000).toFixed(1)} s`);

    const raw = trackClients(clients, WAVE_TIMEOUT_MS);
    const server = await startWsPeer();
    let seq = 0;
    const event = (i: number) =>
      JSON.stringify({ job_id: job.id, seq: ++seq, timestamp: new Date().toISOString(), type: "log", level: "info", message: payload(i) });
    let rawConnectMs: number;
    try {
      const publish = await openSocket(`ws://127.0.0.1:${server.port}/publish`, { onMessage: () => {} });
      cpuBefore = cpuTimeByProcess();
      started = performance.now();
      sockets = await mapLimit(Array.from({ length: clients }), CONNECT_CONCURRENCY, () => openSocket(`ws://127.0.0.1:${server.port}/`, { onMessage: raw.onMessage }));
      rawConnectMs = performance.now() - started;
      connectCpu.peer = cpuSpent(cpuBefore);
      publish.send(event(-1));
      await raw.everyoneGot(-1);
      const before = cpuTimeByProcess();
      for (let i = 0; i < EVENTS; i++) {
        publish.send(event(i));
        await raw.everyoneGot(i);
        await sleep(20);
      }
      cpu.peer = cpuSpent(before);
      publish.close();
      await closeAll(sockets);
    } finally {
      await stopChild(server.child);
    }

    const [c, r] = [summarize(cutroom.latencies), summarize(raw.latencies)];
    const [cw, rw] = [summarize(cutroom.waveEnds), summarize(raw.waveEnds)];
    return {
      peer: "bare ws broadcast",
      rows: [
        { measure: "per-client latency p50", cutroom: c.p50, peer: r.p50, unit: "ms" },
        { measure: "per-client latency p99", cutroom: c.p99, peer: r.p99, unit: "ms" },
        { measure: "last client of an event, median", cutroom: cw.p50, peer: rw.p50, unit: "ms" },
        { measure: `connect ${clients} clients`, cutroom: cutroomConnectMs, peer: rawConnectMs, unit: "ms" },
        { measure: "CPU per connection, server processes", cutroom: cpuOfServers(connectCpu.cutroom) / clients, peer: (connectCpu.peer.get("ws-server") ?? NaN) / clients, unit: "ms" },
      ],
      notes: [
        "peer: a `ws` WebSocketServer in a process of its own (no auth, no job lookup, no replay) relaying each message that arrives on /publish to every other client",
        `${clients} clients × ${EVENTS} events = ${c.n} Cutroom and ${r.n} peer samples; every client got every event (and one warm-up event first)`,
        `Cutroom: events published with createEventPublisher onto the stack's JetStream (send time taken before the publish); clients authenticate with a header and are live once the warm-up event reaches them all. Peer: the same event JSON sent over one WebSocket to a \`ws\` server in its own process that relays it to the others`,
        `CPU ms per 1,000 connections (Cutroom: until every snapshot arrived; peer: until open), Cutroom: ${cpuPerUnit(connectCpu.cutroom, clients / 1000)}; peer: ${cpuPerUnit(connectCpu.peer, clients / 1000, ["bench", "ws-server"])}`,
        `CPU ms per event (to ${clients} clients), Cutroom: ${cpuPerUnit(cpu.cutroom, EVENTS)}; peer: ${cpuPerUnit(cpu.peer, EVENTS, ["bench", "ws-server"])}`,
        `the clients, the publisher and the timing are all in the bench process; each event waits until the previous one reached every client; open files limit ${openFilesLimit()}`,
      ],
    };
  },
};

