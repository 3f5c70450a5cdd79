import { streams, subjects, type Instance, type RpcReply } from "@cutroom/contracts";
import { newInstance, runChecks, serveInstanceHealth, type Logger, type NatsConnection } from "@cutroom/runtime";
import { jetstreamManager } from "@nats-io/jetstream";
import { consumerName } from "./consumer.ts";
import type { Worker } from "./worker.ts";

const encoder = new TextEncoder();

/**
 * Answers `svc.<name>.health` (queue group, so one replica replies) in the RPC reply envelope,
 * with the load as `details` for whoever looks; and, every replica, `svc.<name>.health.instances`
 * with who it is and its load, so /health counts them.
 */
export function serveWorkerHealth(
  nc: NatsConnection,
  name: string,
  queue: Parameters<typeof consumerName>[0],
  worker: Worker,
  log: Logger,
  instance: Instance = newInstance(name),
) {
  const check = async () => {
    const health = await runChecks(name, {
      nats: () => nc.rtt(),
      jetstream: async () => (await jetstreamManager(nc)).consumers.info(streams.jobs.name, consumerName(queue)),
    });
    const load = worker.load();
    // draining 1: up, but taking no new jobs, so /health does not count it as serving its job types.
    return { ...health, load: { concurrency: load.concurrency, in_flight: load.inFlight, free_slots: Math.max(0, load.concurrency - load.working), draining: load.draining ? 1 : 0 } };
  };
  const sub = nc.subscribe(subjects.rpc(name, "health"), {
    queue: `svc.${name}`,
    callback: (err, msg) => {
      if (err) return log.warn({ err }, "health subscription failed");
      check()
        .then(({ load, ...health }) => {
          const reply: RpcReply = { ok: true, data: { ...health, details: load } };
          msg.respond(encoder.encode(JSON.stringify(reply)));
        })
        .catch((e) => log.error({ err: e }, "health check failed"));
    },
  });
  const instances = serveInstanceHealth(nc, name, instance, check, log);
  return { drain: async () => void (await Promise.all([sub.drain(), instances.drain()])) };
}
