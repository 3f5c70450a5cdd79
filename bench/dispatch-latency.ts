import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { makePng, summarize, until, type Benchmark } from "./lib.ts";

const JOBS = 100;
const WARMUP = 3;
const JOB_TIMEOUT_MS = 15_000;
const SCRATCH = "BENCH_SCRATCH";

interface Timeline {
  dispatched?: number;
  running?: number;
  ended?: number;
  failed?: string;
}

/**
 * One job at a time: from its dispatch (the message job-service puts on JOBS, seen on the wire)
 * to its `status: running` event, which job-service publishes at the claim, right before the
 * worker calls the handler. Against a bare JetStream publish → pull consumer delivery on the
 * same nats-server, timed the same way: from the message on the wire to its delivery.
 */
export const dispatchLatency: Benchmark = {
  name: "dispatch",
  title: "2. Dispatch latency",
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"],
  async run({ stack, api, adminToken, log }) {
    const user = await api.enterpriseUser(adminToken, 1_000);
    const fileId = await api.upload(user.token, "in.png", "image/png", makePng());
    const nc = await connect({ ...stack.natsOptions(), name: "bench" });
    try {
      // Core NATS subscribers see every message on these subjects, alongside the streams that store them.
      const timelines = new Map<string, Timeline>();
      const timeline = (jobId: string) => timelines.get(jobId) ?? timelines.set(jobId, {}).get(jobId)!;
      nc.subscribe("jobs.run.>", {
        callback: (_err, msg) => {
          timeline(msg.json<{ job_id: string }>().job_id).dispatched ??= performance.now();
        },
      });
      nc.subscribe("jobs.events.>", {
        callback: (_err, msg) => {
          const at = performance.now();
          const event = msg.json<{ job_id: string; type: string; status?: string; error?: { message: string } }>();
          const t = timeline(event.job_id);
          if (event.type === "status" && event.status === "running") t.running ??= at;
          if (event.type === "result" || event.type === "error") t.ended = at;
          if (event.type === "error") t.failed = event.error?.message ?? "failed";
        },
      });

      const cutroom: number[] = [];
      const fromReply: number[] = [];
      for (let i = 0; i < WARMUP + JOBS; i++) {
        const reply = await api.expect(202, "enqueue", api.call("POST", "/jobs", { token: user.token, json: { type: "image.resize", input: { file_id: fileId, width: 32 } } }));
        const accepted = performance.now();
        // The worker is idle again before the next job, so each one measures a dispatch, not a queue.
        const t = await until(() => (timelines.get(reply.id)?.ended ? timelines.get(reply.id) : undefined), JOB_TIMEOUT_MS, `job ${reply.id} to end`);
        if (t.failed || t.running === undefined || t.dispatched === undefined) throw new Error(`job ${reply.id} did not run and succeed: ${t.failed ?? JSON.stringify(t)}`);
        if (i < WARMUP) continue;
        cutroom.push(t.running - t.dispatched);
        fromReply.push(t.running - accepted);
      }

      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: SCRATCH, subjects: ["bench.scratch.>"], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
      await jsm.consumers.add(SCRATCH, { durable_name: "bench", ack_policy: AckPolicy.Explicit });
      const js = jetstream(nc);
      const onWire = new Map<number, number>();
      nc.subscribe("bench.scratch.>", {
        callback: (_err, msg) => {
          onWire.set(Number(msg.string()), performance.now());
        },
      });
      // The worker pulls as many messages as it has free slots (WORKER_CONCURRENCY, 2 here).
      const messages = await (await js.consumers.get(SCRATCH, "bench")).consume({ max_messages: 2 });
      const delivered = new Map<number, number>();
      void (async () => {
        for await (const m of messages) {
          delivered.set(Number(m.string()), performance.now());
          m.ack();
        }
      })();
      const peer: number[] = [];
      const fromPublish: number[] = [];
      for (let i = 0; i < WARMUP + JOBS; i++) {
        const sent = performance.now();
        await js.publish(`bench.scratch.${i}`, String(i));
        const at = await until(() => delivered.get(i), JOB_TIMEOUT_MS, `message ${i}`);
        await until(() => onWire.get(i), JOB_TIMEOUT_MS, `message ${i} on the wire`);
        if (i < WARMUP) continue;
        peer.push(at - onWire.get(i)!);
        fromPublish.push(at - sent);
      }
      await messages.close();
      await jsm.streams.delete(SCRATCH);

      const [c, p, r, pp] = [summarize(cutroom), summarize(peer), summarize(fromReply), summarize(fromPublish)];
      const early = fromReply.filter((ms) => ms < 0).length;
      log(`dispatch → running: p50 ${c.p50.toFixed(2)} ms, p99 ${c.p99.toFixed(2)} ms; on the wire → delivery: p50 ${p.p50.toFixed(2)} ms, p99 ${p.p99.toFixed(2)} ms`);
      return {
        peer: "JetStream publish → pull consumer",
        rows: [
          { measure: "latency p50", cutroom: c.p50, peer: p.p50, unit: "ms" },
          { measure: "latency p99", cutroom: c.p99, peer: p.p99, unit: "ms" },
        ],
        notes: [
          `${JOBS} sequential image.resize jobs (after ${WARMUP} warm-up), each waited to its end; peer: ${JOBS} messages on a scratch work-queue stream (file storage) on the same nats-server, one at a time; p99 of ${JOBS} samples is the second slowest`,
          `both timed from the message on the wire (a core NATS subscription in the bench process) to the handler's start (the \`status: running\` event) or the consumer's delivery; the peer from its publish call instead: p50 ${pp.p50.toFixed(2)} ms, p99 ${pp.p99.toFixed(2)} ms`,
          `from the 202 reply to \`running\`: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms; in ${early} of ${JOBS} jobs \`running\` came before the 202, since job-service dispatches before it answers and the claim overtakes the reply`,
        ],
      };
    } finally {
      await nc.close();
    }
  },
};
