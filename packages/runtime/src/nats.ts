import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy, type StreamConfig } from "@nats-io/jetstream";
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
    // Otherwise every request (each JetStream publish, ack wait, API call) builds two Errors with stack
    // traces up front, to point at its caller if it ever times out: ~10% of a busy service's CPU (ADR 032).
    noAsyncTraces: true,
  });
  flushOncePerTurn(nc);
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect") log.warn({ nats: s.type }, "nats connection changed");
      // A permissions violation lands here when no request or subscription is waiting for it: say which subject.
      if (s.type === "error") log.error({ err: s.error }, "nats error");
    }
  })().catch(() => {});
  return nc;
}

interface Protocol {
  flushPending: () => void;
  close: (err?: Error) => Promise<void>;
  outbound: { size: () => number };
  pendingLimit: number;
}

/**
 * nats.js writes what a turn of the event loop queued in a microtask after its first command, so
 * each callback that publishes (an HTTP request read, a database answer) paid its own socket write
 * and nats-server its own read: a quarter of the gateway's CPU under load (ADR 034). The write now
 * waits for the end of the turn, once for everything the turn's callbacks sent; a buffer past
 * nats.js's own threshold (32 KiB) is still written at once. Left as is if nats.js's internals change.
 */
export function flushOncePerTurn(nc: NatsConnection): void {
  const protocol = (nc as unknown as { protocol?: Partial<Protocol> }).protocol;
  if (typeof protocol?.flushPending !== "function" || typeof protocol.close !== "function" || typeof protocol.outbound?.size !== "function" || typeof protocol.pendingLimit !== "number") return;
  const { outbound } = protocol;
  const flushNow = protocol.flushPending.bind(protocol);
  const close = protocol.close.bind(protocol);
  let scheduled = false;
  protocol.flushPending = () => {
    if (outbound.size() >= protocol.pendingLimit!) return flushNow();
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      flushNow();
    });
  };
  // close() destroys the socket without writing what is pending: what this turn published goes first, as it did.
  protocol.close = (err?: Error) => {
    if (outbound.size() > 0) flushNow();
    return close(err);
  };
}

/** What a process makes of the streams when they are missing; see ensureStreams. */
export interface StreamOptions {
  /** Copies of a stream this process creates (NATS_STREAM_REPLICAS). A stream that exists keeps its own. */
  replicas?: number;
  log?: Logger;
  /** The first wait before trying again, doubled after each failure up to `maxMs`. */
  retry?: { firstMs?: number; maxMs?: number };
}

// A day of events for replays; two minutes of dedup for a retried dispatch publish.
const streamConfigs = (replicas: number) => [
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

// What a running stream may be brought up to date in. Not num_replicas (see syncStreams), not retention or storage (the server refuses).
const updatable = ["subjects", "duplicate_window", "max_age", "discard"] as const;

/**
 * One pass over the two streams: creates a missing one with `replicas` copies, and brings an existing
 * one's subjects and limits up to date, never its replicas. A process started without
 * NATS_STREAM_REPLICAS once turned R3 streams into R1; and nats-server before 2.9.16 never removes
 * acked messages from a work queue whose replicas were raised after its consumer existed, so a
 * stream is made with its final count and an operator changes it (`nats stream edit`), not a start.
 * Returns the names of the streams it created.
 */
export async function syncStreams(
  nc: NatsConnection,
  opts: Pick<StreamOptions, "replicas" | "log"> & { mayCreate?: (name: string) => boolean; found?: (name: string) => void } = {},
): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const created: string[] = [];
  for (const cfg of streamConfigs(opts.replicas ?? 1)) {
    let current: StreamConfig;
    try {
      current = (await jsm.streams.info(cfg.name)).config;
      opts.found?.(cfg.name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      if (opts.mayCreate && !opts.mayCreate(cfg.name)) continue;
      try {
        await jsm.streams.add(cfg);
      } catch (addErr) {
        // Another job-service replica made it first.
        if (!/already in use|already exists/i.test((addErr as Error).message)) throw addErr;
      }
      created.push(cfg.name);
      continue;
    }
    if (current.num_replicas !== cfg.num_replicas) {
      opts.log?.warn(
        { stream: cfg.name, replicas: current.num_replicas, NATS_STREAM_REPLICAS: cfg.num_replicas },
        `stream ${cfg.name} has ${current.num_replicas} replicas and NATS_STREAM_REPLICAS says ${cfg.num_replicas}: left at ${current.num_replicas} (change it with nats stream edit)`,
      );
    }
    const changed = Object.fromEntries(updatable.filter((k) => k in cfg && JSON.stringify(cfg[k as keyof typeof cfg]) !== JSON.stringify(current[k])).map((k) => [k, cfg[k as keyof typeof cfg]]));
    // update() merges into the stream's own config, so its replicas stay what they are.
    if (Object.keys(changed).length > 0) await jsm.streams.update(cfg.name, changed);
  }
  return created;
}

/**
 * Makes sure both streams exist (syncStreams), trying again with a growing wait, and logging why,
 * for as long as it takes: JetStream may not be up yet (a server still starting, a cluster still
 * electing its leader or short of peers for R3). Only a permissions violation ends it: waiting
 * never fixes a user that may not create streams.
 */
export async function ensureStreams(nc: NatsConnection, opts: StreamOptions = {}): Promise<string[]> {
  return retrying(() => syncStreams(nc, opts), "could not create or check the JetStream streams; trying again", opts);
}

/**
 * How long a stream must have been missing before keepStreams makes it again. nats-server 2.9 drops a
 * deleted stream from its account before it removes the stream's directory: a stream of the same name
 * made in between writes its first block there, the removal takes it, and the new stream acks
 * messages it can never deliver ("error looking up message for consumer": jobs stayed queued forever).
 */
export const STREAM_SETTLE_MS = 1_000;

/**
 * For job-service: re-creates the streams the broker lost (a server back with an empty store, or a
 * stream deleted by hand) while the process runs, every `everyMs` and at once after a reconnect, once
 * a stream has been missing for STREAM_SETTLE_MS. Consumers on them make themselves again.
 */
export function keepStreams(nc: NatsConnection, opts: StreamOptions & { everyMs: number; settleMs?: number }): { stop: () => Promise<void> } {
  const settleMs = opts.settleMs ?? STREAM_SETTLE_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> = Promise.resolve();
  // When each stream found missing was first found so; a stream found again is forgotten.
  const missingSince = new Map<string, number>();
  const mayCreate = (name: string) => {
    if (!missingSince.has(name)) missingSince.set(name, Date.now());
    return Date.now() - missingSince.get(name)! >= settleMs;
  };
  const check = () => {
    clearTimeout(timer);
    current = current
      .then(async () => {
        if (stopped) return;
        const created = await syncStreams(nc, { ...opts, mayCreate, found: (name) => missingSince.delete(name) });
        for (const name of created) missingSince.delete(name);
        if (created.length > 0) opts.log?.warn({ streams: created }, "re-created JetStream streams the broker had lost");
      })
      .catch((err) => opts.log?.warn({ err }, "could not check the JetStream streams; trying again"))
      .finally(() => {
        // A stream waiting out its settle is looked at again when the settle is over, not a whole interval later.
        if (!stopped) timer = setTimeout(check, missingSince.size > 0 ? Math.min(opts.everyMs, settleMs) : opts.everyMs);
      });
  };
  timer = setTimeout(check, opts.everyMs);
  (async () => {
    for await (const s of nc.status()) if (s.type === "reconnect" && !stopped) check();
  })().catch(() => {});
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}

/**
 * Waits until job-service has made both streams: workers read the streams but may not create or
 * change them (their NATS users lack the permission), so two versions never fight over a config.
 * Any other failure (JetStream not up yet) is logged and tried again, never fatal.
 */
export async function waitForStreams(nc: NatsConnection, log: Logger, opts: { everyMs?: number; maxMs?: number } = {}): Promise<void> {
  let told = false;
  await retrying(
    async () => {
      const jsm = await jetstreamManager(nc);
      for (const name of [streams.jobs.name, streams.jobEvents.name]) {
        for (;;) {
          try {
            await jsm.streams.info(name);
            break;
          } catch (err) {
            if (!isNotFound(err)) throw err;
            if (!told) log.info({ stream: name }, "waiting for job-service to create the JetStream streams");
            told = true;
            await sleep(opts.everyMs ?? 250);
          }
        }
      }
    },
    "could not look up the JetStream streams; trying again",
    { log, retry: { firstMs: opts.everyMs, maxMs: opts.maxMs } },
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs a JetStream call until it works, waiting longer each time (250 ms doubling to 5 s) and logging
 * why: at start, a cluster electing its leader or a server not up yet is a wait, not a crash. Only a
 * permissions violation, which waiting cannot fix, is thrown.
 */
export async function retrying<T>(attempt: () => Promise<T>, message: string, opts: Pick<StreamOptions, "log" | "retry">): Promise<T> {
  let waitMs = opts.retry?.firstMs ?? 250;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (isPermissionViolation(err)) throw err;
      opts.log?.warn({ err, retry_in_ms: waitMs }, message);
      await sleep(waitMs);
      waitMs = Math.min(waitMs * 2, opts.retry?.maxMs ?? 5000);
    }
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: string | number; api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10059 || /not found/i.test(e?.message ?? "");
}

function isPermissionViolation(err: unknown): boolean {
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (/permissions violation/i.test(e.message ?? "")) return true;
  }
  return false;
}
