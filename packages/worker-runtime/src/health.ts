import { streams, subjects, type RpcReply } from "@cutroom/contracts";
import { runChecks, type Logger, type NatsConnection } from "@cutroom/runtime";
import { jetstreamManager } from "@nats-io/jetstream";
import { consumerName } from "./consumer.ts";
import type { Worker } from "./worker.ts";

const encoder = new TextEncoder();

/**
 * Answers `svc.<name>.health` (queue group, so one replica replies) in the RPC reply envelope,
 * with the load as `details` for whoever looks.
 */
export function serveWorkerHealth(nc: NatsConnection, name: string, queue: Parameters<typeof consumerName>[0], worker: Worker, log: Logger) {
  const sub = nc.subscribe(subjects.rpc(name, "health"), {
    queue: `svc.${name}`,
    callback: (err, msg) => {
      if (err) return log.warn({ err }, "health subscription failed");
      void (async () => {
        const health = await runChecks(name, {
          nats: () => nc.rtt(),
          jetstream: async () => (await jetstreamManager(nc)).consumers.info(streams.jobs.name, consumerName(queue)),
        });
        const load = worker.load();
        const reply: RpcReply = { ok: true, data: { ...health, details: { concurrency: load.concurrency, in_flight: load.inFlight } } };
        msg.respond(encoder.encode(JSON.stringify(reply)));
      })().catch((e) => log.error({ err: e }, "health check failed"));
    },
  });
  return { drain: () => sub.drain() };
}
