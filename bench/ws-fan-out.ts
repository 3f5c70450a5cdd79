import { stopChild } from "@cutroom/devstack";
import { createEventPublisher } from "@cutroom/runtime";
import { connect } from "@nats-io/transport-node";
import type WebSocket from "ws";
import { cpuPerUnit, cpuSpent, cpuTimeByProcess, makePng, mapLimit, openFilesLimit, openSocket, sleep, startWsPeer, summarize, until, type Benchmark } from "./lib.ts";

const CLIENTS = 1_000;
const EVENTS = 50;
const CONNECT_CONCURRENCY = 50;
const WAVE_TIMEOUT_MS = 15_000;
// Sockets this process needs besides the clients: NATS, HTTP, the peer's publisher, stdio.
const SPARE_FDS = 100;

/** What every client measures, whichever server it listens to. */
function createListeners(clients: number) {
  const latencies: number[] = [];
  const waveEnds: number[] = [];
  const counts = new Map<number, number>();
  let snapshots = 0;
  const onMessage = (text: string) => {
    const at = performance.now();
    const m = JSON.parse(text) as { type: string; message?: string };
    if (m.type === "snapshot") snapshots++;
    if (m.type !== "log") return;
    const { i, sent } = JSON.parse(m.message!) as { i: number; sent: number };
    const n = (counts.get(i) ?? 0) + 1;
    counts.set(i, n);
    if (i < 0) return;
    latencies.push(at - sent);
    if (n === clients) waveEnds.push(at - sent);
  };
  const everyoneGot = (i: number) => until(() => (counts.get(i) === clients ? true : undefined), WAVE_TIMEOUT_MS, `all ${clients} clients to get event ${i}`);
  return { onMessage, everyoneGot, latencies, waveEnds, snapshots: () => snapshots };
}

const payload = (i: number) => JSON.stringify({ i, sent: performance.now() });

/**
 * 1,000 WebSocket clients on `WS /ws/jobs/{id}` of one job; job events published onto the stack's
 * NATS, each carrying its send time; per-client receive latency. Against a bare `ws` server that
 * broadcasts the same events to 1,000 clients.
 */
export const wsFanOut: Benchmark = {
  name: "ws-fan-out",
  title: "4a. WebSocket fan-out: 1,000 clients on one job",
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"],
  // All 1,000 clients are one user's: the per-user cap (20 by default) is raised for the run.
  env: { WS_MAX_CONNECTIONS_PER_USER: "100000" },
  async run({ stack, api, adminToken, log }) {
    const clients = Math.min(CLIENTS, openFilesLimit() - SPARE_FDS);
    if (clients < CLIENTS) log(`open files limit allows only ${clients} clients`);
    const user = await api.enterpriseUser(adminToken, 10);
    const fileId = await api.upload(user.token, "in.png", "image/png", makePng());
    // No workers in this stack: the job stays queued while we publish events for it.
    const job = await api.expect(202, "enqueue", api.call("POST", "/jobs", { token: user.token, json: { type: "image.resize", input: { file_id: fileId, width: 32 } } }));
    const nc = await connect({ ...stack.natsOptions(), name: "bench" });
    const publisher = createEventPublisher(nc);

    const cpu = { cutroom: new Map<string, number>(), peer: new Map<string, number>() };
    const cutroom = createListeners(clients);
    const wsUrl = `${stack.url.replace(/^http/, "ws")}/ws/jobs/${job.id}`;
    let started = performance.now();
    let sockets = await mapLimit(Array.from({ length: clients }), CONNECT_CONCURRENCY, () =>
      openSocket(wsUrl, { headers: { authorization: `Bearer ${user.token}` }, onMessage: cutroom.onMessage }),
    );
    await until(() => (cutroom.snapshots() === clients ? true : undefined), 60_000, "every client's snapshot");
    const cutroomConnectMs = performance.now() - started;
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

    const raw = createListeners(clients);
    const server = await startWsPeer();
    let seq = 0;
    const event = (i: number) =>
      JSON.stringify({ job_id: job.id, seq: ++seq, timestamp: new Date().toISOString(), type: "log", level: "info", message: payload(i) });
    let rawConnectMs: number;
    try {
      const publish = await openSocket(`ws://127.0.0.1:${server.port}/publish`, { onMessage: () => {} });
      started = performance.now();
      sockets = await mapLimit(Array.from({ length: clients }), CONNECT_CONCURRENCY, () => openSocket(`ws://127.0.0.1:${server.port}/`, { onMessage: raw.onMessage }));
      rawConnectMs = performance.now() - started;
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
      ],
      notes: [
        "peer: a `ws` WebSocketServer in a process of its own (no auth, no job lookup, no replay) relaying each message that arrives on /publish to every other client",
        `${clients} clients × ${EVENTS} events = ${c.n} Cutroom and ${r.n} peer samples; every client got every event (and one warm-up event first)`,
        `Cutroom: events published with createEventPublisher onto the stack's JetStream (send time taken before the publish); clients authenticate with a header and are live once the warm-up event reaches them all. Peer: the same event JSON sent over one WebSocket to a \`ws\` server in its own process that relays it to the others`,
        `CPU ms per event (to ${clients} clients), Cutroom: ${cpuPerUnit(cpu.cutroom, EVENTS)}; peer: ${cpuPerUnit(cpu.peer, EVENTS, ["bench", "ws-server"])}`,
        `the clients, the publisher and the timing are all in the bench process; each event waits until the previous one reached every client; open files limit ${openFilesLimit()}`,
      ],
    };
  },
};

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
