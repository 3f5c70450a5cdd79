import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from "@nats-io/jetstream";
import { streams } from "@cutroom/contracts";
import type { Logger } from "./logger.ts";

export type { NatsConnection };

export async function connectNats(url: string, name: string, log: Logger): Promise<NatsConnection> {
  const nc = await connect({ servers: url.split(","), name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect") log.warn({ nats: s.type }, "nats connection changed");
    }
  })().catch(() => {});
  return nc;
}

/**
 * Creates or updates the two streams. JOBS is a work queue (a message leaves once acked);
 * JOB_EVENTS keeps a day of events so clients can replay what they missed.
 */
export async function ensureStreams(nc: NatsConnection, opts: { replicas?: number } = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const replicas = opts.replicas ?? 1;
  const configs = [
    {
      name: streams.jobs.name,
      subjects: [...streams.jobs.subjects],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: replicas,
      duplicate_window: 2 * 60 * 1_000_000_000,
    },
    {
      name: streams.jobEvents.name,
      subjects: [...streams.jobEvents.subjects],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      max_age: 24 * 60 * 60 * 1_000_000_000,
      discard: DiscardPolicy.Old,
    },
  ];
  for (const cfg of configs) {
    try {
      await jsm.streams.info(cfg.name);
      await jsm.streams.update(cfg.name, cfg);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(cfg);
    }
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: string | number; api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10059 || /not found/i.test(e?.message ?? "");
}
