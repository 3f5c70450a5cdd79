import { availableParallelism } from "node:os";
import { cutroomCreators, peerCreators, type Creator } from "./job-creation.ts";
import postgres from "postgres";
import { makePng, median, openSocket, summarize, type Benchmark } from "./lib.ts";
import { startPeerStack } from "./peer-stack.ts";

const JOBS = 100;
const WARMUP = 5;
const JOB_TIMEOUT_MS = 15_000;
const CONCURRENCY = availableParallelism();
const TERMINAL = ["succeeded", "failed", "canceled"];

interface Run {
  /** From sending POST /jobs to the terminal event on the job's WebSocket. */
  totalMs: number;
  /** From sending POST /jobs to its 202. */
  acceptedMs: number;
  /** The terminal event came in the snapshot: the job had ended before the socket was open. */
  inSnapshot: boolean;
  /** Wall-clock ms (epoch, sub-ms) of sending POST /jobs and of the terminal event's arrival, to place the row's own times between. */
  sentAt: number;
  endAt: number;
  jobId: string;
}

type Message = { type: string; job?: { status: string } };

/**
 * One tiny job at a time through each stack, alternating: POST /jobs (image.thumbnail of a 64×48
 * PNG) → 202 → open the job's WebSocket → its terminal event (or a snapshot that shows it ended).
 */
async function runOne(baseUrl: string, creator: Creator, side: "cutroom" | "peer"): Promise<Run> {
  const sent = performance.now();
  const res = await fetch(`${baseUrl}/api/v1/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${creator.token}`, "content-type": "application/json", "idempotency-key": crypto.randomUUID() },
    body: JSON.stringify({ type: "image.thumbnail", input: { file_id: creator.fileId, width: 32, height: 32 } }),
  });
  const body = (await res.json()) as { id: string };
  const accepted = performance.now();
  if (res.status !== 202) throw new Error(`${side} POST /jobs: ${res.status} ${JSON.stringify(body)}`);
  let end: { at: number; ok: boolean; inSnapshot: boolean; what: string } | undefined;
  let settle: () => void;
  const ended = new Promise<void>((resolve) => (settle = resolve));
  const finish = (ok: boolean, inSnapshot: boolean, what: string) => {
    end ??= { at: performance.now(), ok, inSnapshot, what };
    settle();
  };
  const ws = await openSocket(`${baseUrl.replace(/^http/, "ws")}/ws/jobs/${body.id}`, {
    headers: { authorization: `Bearer ${creator.token}` },
    onMessage: (text) => {
      const m = JSON.parse(text) as Message;
      if (m.type === "snapshot" && TERMINAL.includes(m.job!.status)) finish(m.job!.status === "succeeded", true, text);
      // Cutroom ends a job with a result or an error event; the peer relays BullMQ's completed or failed.
      if (m.type === "result" || m.type === "completed") finish(true, false, text);
      if (m.type === "error" || m.type === "failed") finish(false, false, text);
    },
  });
  ws.once("close", () => finish(false, false, "the socket closed first"));
  const timer = setTimeout(() => finish(false, false, `no terminal event within ${JOB_TIMEOUT_MS / 1000} s`), JOB_TIMEOUT_MS);
  await ended;
  clearTimeout(timer);
  ws.close();
  if (!end!.ok) throw new Error(`${side} job ${body.id} did not succeed: ${end!.what}`);
  const wall = (t: number) => performance.timeOrigin + t;
  return { totalMs: end!.at - sent, acceptedMs: accepted - sent, inSnapshot: end!.inSnapshot, jobId: body.id, sentAt: wall(sent), endAt: wall(end!.at) };
}

/**
 * Median ms of each phase, from the client's send and the terminal event's arrival and the row's own
 * times (one machine, one clock): sent → created, created → started (for Cutroom through its dispatch
 * mark), started → completed, completed → the terminal event at the client.
 */
async function medianPhases(sql: postgres.Sql, table: string, runs: Run[], dispatched: boolean): Promise<string> {
  const rows = await sql.unsafe<{ id: string; created: number; dispatched: number | null; started: number; completed: number }[]>(
    `select id, extract(epoch from created_at) * 1000 as created, ${dispatched ? "extract(epoch from dispatched_at) * 1000" : "null"} as dispatched,
            extract(epoch from started_at) * 1000 as started, extract(epoch from completed_at) * 1000 as completed
       from ${table} where id = any($1::uuid[])`,
    [runs.map((r) => r.jobId)],
  );
  const byId = new Map(runs.map((r) => [r.jobId, r]));
  const phase = (f: (r: (typeof rows)[number], run: Run) => number) => median(rows.map((r) => f(r, byId.get(r.id)!))).toFixed(1);
  const n = (v: unknown) => Number(v);
  return [
    `sent → created ${phase((r, run) => n(r.created) - run.sentAt)} ms`,
    dispatched ? `created → dispatched ${phase((r) => n(r.dispatched) - n(r.created))} ms, dispatched → started ${phase((r) => n(r.started) - n(r.dispatched))} ms` : `created → started ${phase((r) => n(r.started) - n(r.created))} ms`,
    `started → completed ${phase((r) => n(r.completed) - n(r.started))} ms`,
    `completed → terminal event at the client ${phase((r, run) => run.endAt - n(r.completed))} ms`,
  ].join(", ");
}

export const tinyJobs: Benchmark = {
  name: "tiny-jobs",
  title: "2. Tiny jobs end to end",
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"],
  env: { WORKER_CONCURRENCY: String(CONCURRENCY) },
  async run({ stack, api, adminToken, dir, postgresUrl, log }) {
    const png = makePng();
    const [cutroomUser] = await cutroomCreators(api, adminToken, png, 1, 1_000);
    const peer = await startPeerStack({ postgresUrl, name: "tiny-jobs", dir, concurrency: CONCURRENCY });
    const runs = { cutroom: [] as Run[], peer: [] as Run[] };
    let phases: Record<"cutroom" | "peer", string>;
    try {
      await peer.startWorker();
      const [peerUser] = peerCreators(peer, png, 1);
      // Alternating job by job, so a busy spell of the machine falls on both sides.
      for (let i = 0; i < WARMUP + JOBS; i++) {
        const c = await runOne(stack.url, cutroomUser!, "cutroom");
        const p = await runOne(peer.url, peerUser!, "peer");
        if (i < WARMUP) continue;
        runs.cutroom.push(c);
        runs.peer.push(p);
      }
      const sql = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
      phases = { cutroom: await medianPhases(sql, "jobs.jobs", runs.cutroom, true), peer: await medianPhases(peer.sql, "peer_jobs", runs.peer, false) };
      await sql.end();
    } finally {
      await peer.stop();
    }
    const [c, p] = [summarize(runs.cutroom.map((r) => r.totalMs)), summarize(runs.peer.map((r) => r.totalMs))];
    const [ca, pa] = [median(runs.cutroom.map((r) => r.acceptedMs)), median(runs.peer.map((r) => r.acceptedMs))];
    log(`POST → terminal event: Cutroom p50 ${c.p50.toFixed(1)} ms, p99 ${c.p99.toFixed(1)} ms; peer p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms`);
    return {
      peer: "Fastify + BullMQ",
      rows: [
        { measure: "POST → terminal event, p50", cutroom: c.p50, peer: p.p50, unit: "ms" },
        { measure: "POST → terminal event, p99", cutroom: c.p99, peer: p.p99, unit: "ms" },
        { measure: "POST → 202, median", cutroom: ca, peer: pa, unit: "ms" },
      ],
      notes: [
        "peer: the Fastify + BullMQ API of the job-creation benchmark, plus a BullMQ Worker process (sharp: read the input file from local disk, fit into 32×32, write the output to local disk, update the row) and WS /ws/jobs/:id on the API relaying QueueEvents after a snapshot of the row. It does not fetch the input or store the output through a storage service (no file record, no signed URLs), record or replay events, reserve or capture credits, or claim the job (BullMQ's lock is the only guard against a second run)",
        `${JOBS} image.thumbnail jobs a side after ${WARMUP} warm-up, one at a time, alternating Cutroom and peer; worker concurrency ${CONCURRENCY} on both; p99 of ${JOBS} samples is the second slowest`,
        `timed from sending POST /jobs to the terminal event on the job's WebSocket (Cutroom: result; peer: completed), the socket opened right after the 202 (token in the Authorization header); the job had already ended when the snapshot came in ${runs.cutroom.filter((r) => r.inSnapshot).length} Cutroom and ${runs.peer.filter((r) => r.inSnapshot).length} peer runs`,
        `medians by phase from each side's job rows (created_at → started_at → completed_at) and the client's clock, Cutroom: ${phases.cutroom}; peer: ${phases.peer}`,
      ],
    };
  },
};
