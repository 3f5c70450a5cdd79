import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from "@nats-io/jetstream";
import { natsInboxPrefix, streams } from "@cutroom/contracts";
import type { z } from "zod";
import type { BaseEnv } from "./env.ts";
import type { Logger } from "./logger.ts";

export type { NatsConnection };

/** Where and as whom to connect: an app's env, or a bare URL (a test's own server, no auth). */
export type NatsTarget = string | Pick<z.output<typeof BaseEnv>, "NATS_URL" | "NATS_USER" | "NATS_PASSWORD">;

/**
 * Connects as `name`, with NATS_USER/NATS_PASSWORD when set. Replies come to the app's own
 * inbox prefix, the one its NATS user may subscribe to (packages/contracts/src/nats-permissions.ts).
 */
export async function connectNats(target: NatsTarget, name: string, log: Logger): Promise<NatsConnection> {
  const { NATS_URL: url, NATS_USER: user, NATS_PASSWORD: pass } = typeof target === "string" ? { NATS_URL: target, NATS_USER: undefined, NATS_PASSWORD: undefined } : target;
  if (!user !== !pass) throw new Error("NATS_USER and NATS_PASSWORD must be set together");
  const nc = await connect({
    servers: url.split(","),
    name,
    ...(user ? { user, pass } : {}),
    inboxPrefix: natsInboxPrefix(name),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect") log.warn({ nats: s.type }, "nats connection changed");
      // A permissions violation lands here when no request or subscription is waiting for it: say which subject.
      if (s.type === "error") log.error({ err: s.error }, "nats error");
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

/**
 * Waits until job-service has made both streams: workers read the streams but may not create or
 * change them (their NATS users lack the permission), so two versions never fight over a config.
 */
export async function waitForStreams(nc: NatsConnection, log: Logger, opts: { everyMs?: number } = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  let told = false;
  for (const name of [streams.jobs.name, streams.jobEvents.name]) {
    for (;;) {
      try {
        await jsm.streams.info(name);
        break;
      } catch (err) {
        if (!isNotFound(err)) throw err;
        if (!told) log.info({ stream: name }, "waiting for job-service to create the JetStream streams");
        told = true;
        await new Promise((r) => setTimeout(r, opts.everyMs ?? 250));
      }
    }
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: string | number; api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10059 || /not found/i.test(e?.message ?? "");
}
