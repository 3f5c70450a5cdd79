import { httpWorkerKeyPrefix, type RpcRes, WorkerHeartbeat, workerRegistryBucket, workerRegistryId, workerRegistryKeepMs, type WorkerIdentity } from "@cutroom/contracts";
import type { Logger, NatsConnection, RpcClient } from "@cutroom/runtime";
import { JetStreamApiCodes, JetStreamApiError, StorageType } from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";

/** The request header an HTTP worker may name its instance with (docs/WORKER-API.md). */
export const workerInstanceHeader = "cutroom-worker-instance";

export interface HttpWorkerSeen {
  worker: WorkerIdentity;
  /** The Cutroom-Worker-Instance header, else the lease body's worker name, else the one its lease was taken with. */
  instance: string | undefined;
  /** The client's address: its host when it names no instance. */
  ip: string;
}

export interface HttpWorkerRecorder {
  /** Notes a call; puts the instance's heartbeat when the last put is a heartbeat interval old. */
  seen: (call: HttpWorkerSeen) => void;
  /** A lease was handed to the instance (in_flight counts it until it ends or runs out). */
  leased: (call: HttpWorkerSeen, leaseId: string, expiresAt: string) => void;
  /** A lease was renewed to expiresAt. */
  renewed: (leaseId: string, expiresAt: string) => void;
  /** A lease ended with the job: succeeded or failed. */
  finished: (leaseId: string, ok: boolean) => void;
  /** The instance name a lease was taken with, for calls under it that name none. */
  instanceOf: (leaseId: string) => string | undefined;
}

interface Seen {
  id: string;
  worker: WorkerIdentity;
  /** Its instance name, as its leases are recorded under (the token's name when none): what in_flight is counted by. */
  instance: string | undefined;
  host: string;
  started_at: string;
  lastPut: number;
  leases: Map<string, { expiresAt: number; since: number }>;
  durations: number[];
  ended: { at: number; ok: boolean }[];
  pending?: NodeJS.Timeout | undefined;
}

const RECENT_DURATIONS = 30;
type LeaseCounts = RpcRes<"job", "workerInFlight">;
const HOUR_MS = 60 * 60_000;
// Writes that lose the compare-and-set to another gateway's read again; more than a few in a row means something else is wrong.
const CAS_TRIES = 5;

/** An HTTP worker instance's registry id and key: under http. (where the gateway may put), its token id and its instance name. */
export const httpWorkerId = (call: Pick<HttpWorkerSeen, "worker" | "instance">) =>
  `${httpWorkerKeyPrefix}${workerRegistryId(`${call.worker.token_id}${call.instance ? `-${call.instance}` : ""}`)}`;

/**
 * Writes an HTTP worker's registry record by compare-and-set on its revision. `next` is given the stored record,
 * so what one gateway set there (draining) is carried by every replica's later puts: none overwrites a record it
 * did not read. `next` answering undefined writes nothing. Answers what was written.
 */
export async function updateHttpWorkerRecord(kv: KV, id: string, next: (stored: WorkerHeartbeat | undefined) => WorkerHeartbeat | undefined): Promise<WorkerHeartbeat | undefined> {
  for (let tries = 1; ; tries++) {
    const entry = await kv.get(id);
    const live = entry?.operation === "PUT" ? entry : undefined;
    const stored = live ? WorkerHeartbeat.safeParse(safeJson(live)) : undefined;
    const hb = next(stored?.success ? stored.data : undefined);
    if (!hb) return undefined;
    try {
      if (live) await kv.update(id, JSON.stringify(hb), live.revision);
      else await kv.create(id, JSON.stringify(hb));
      return hb;
    } catch (err) {
      // Another replica wrote it since the read: read again.
      const conflict = err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
      if (!conflict || tries >= CAS_TRIES) throw err;
    }
  }
}

function safeJson(e: KvEntry): unknown {
  try {
    return e.json();
  } catch {
    return undefined;
  }
}

/**
 * Records workers over HTTP (ADR 040) in the worker registry (ADR 038) as kind http, from the calls
 * they make: the gateway puts each instance's heartbeat for it, throttled in memory to one put per
 * `heartbeatMs` however many calls come. What every replica must agree on comes from shared state:
 * its jobs in hand are its live leases in Postgres (job.workerInFlight), and its state (draining,
 * set by POST /workers/{id}/drain) is the stored record's, kept by a compare-and-set write. An
 * instance that stops calling stops being put, and the registry's readers judge it unhealthy, then
 * gone, as any other.
 */
export function httpWorkerRecorder(nc: NatsConnection, rpc: Pick<RpcClient, "call">, log: Logger, opts: { heartbeatMs: number }): HttpWorkerRecorder {
  const instances = new Map<string, Seen>();
  const leaseOwner = new Map<string, { id: string; instance: string | undefined }>();
  let kv: Promise<KV> | undefined;
  let failing = false;
  // Same config as the workers ask for: whoever comes first makes the bucket.
  const bucket = () => (kv ??= new Kvm(nc).create(workerRegistryBucket, { history: 1, ttl: workerRegistryKeepMs, storage: StorageType.Memory }));

  // Under http. in the bucket: the gateway may put there and nowhere a NATS worker puts (nats-permissions.ts).
  const idOf = httpWorkerId;
  const heartbeat = (s: Seen, now: number, counts: LeaseCounts, stored: WorkerHeartbeat | undefined): WorkerHeartbeat => {
    const inFlight = counts.in_flight;
    return {
      id: s.id,
      kind: "http",
      queue: "http",
      job_types: s.worker.job_types,
      // No slots to count: an HTTP worker takes what it leases, so its load is 100% while it holds a job.
      concurrency: inFlight,
      // The protocol carries no version: unknown until it does.
      version: "unknown",
      host: s.host,
      pid: 0,
      // The first replica's: the instance started when any gateway first heard it.
      started_at: stored?.started_at ?? s.started_at,
      heartbeat_ms: opts.heartbeatMs,
      // Draining until resumed, whichever replica drained it.
      state: stored?.state === "draining" ? "draining" : "running",
      pulling: true,
      in_flight: inFlight,
      free_slots: 0,
      recent_durations_ms: counts.recent_durations_ms,
      jobs_done_last_hour: counts.done_last_hour,
      jobs_failed_last_hour: counts.failed_last_hour,
      sent_at: new Date(now).toISOString(),
    };
  };
  // Its leases and last hour as Postgres holds them, so that every replica puts the same figures; this replica's own if job-service does not answer.
  const countsOf = (s: Seen): Promise<LeaseCounts> =>
    rpc.call("job", "workerInFlight", { worker: s.worker, ...(s.instance ? { name: s.instance } : {}) }).catch((err) => {
      log.warn({ err, worker_id: s.id }, "could not count an http worker's leases; putting this gateway's counts");
      const now = Date.now();
      for (const [leaseId, l] of s.leases) if (l.expiresAt <= now) s.leases.delete(leaseId);
      s.ended = s.ended.filter((e) => now - e.at < HOUR_MS);
      return { in_flight: s.leases.size, done_last_hour: s.ended.length, failed_last_hour: s.ended.filter((e) => !e.ok).length, recent_durations_ms: s.durations };
    });
  const put = (s: Seen, now: number) => {
    s.lastPut = now;
    Promise.all([bucket(), countsOf(s)])
      .then(([b, counts]) => updateHttpWorkerRecord(b, s.id, (stored) => heartbeat(s, Date.now(), counts, stored)))
      .then(() => {
        if (failing) log.info("http worker heartbeats stored again");
        failing = false;
      })
      .catch((err) => {
        kv = undefined;
        if (!failing) log.warn({ err }, "could not store an http worker's heartbeat; trying again on its next call");
        failing = true;
      });
  };
  const touch = (call: HttpWorkerSeen) => {
    const id = idOf(call);
    const now = Date.now();
    let s = instances.get(id);
    if (!s) {
      s = { id, worker: call.worker, instance: call.instance, host: call.instance ?? call.ip, started_at: new Date(now).toISOString(), lastPut: 0, leases: new Map(), durations: [], ended: [] };
      instances.set(id, s);
    }
    // The token's scope as verified on this call: a changed token shows on the next put.
    s.worker = call.worker;
    return { s, now };
  };
  const maybePut = (s: Seen, now: number) => {
    if (now - s.lastPut >= opts.heartbeatMs) put(s, now);
  };
  // A lease taken or ended changes its jobs in hand: put once the interval allows, not only on its next call.
  const putSoon = (s: Seen, now: number) => {
    if (now - s.lastPut >= opts.heartbeatMs) return put(s, now);
    if (s.pending) return;
    s.pending = setTimeout(() => {
      s.pending = undefined;
      put(s, Date.now());
    }, s.lastPut + opts.heartbeatMs - now);
    s.pending.unref();
  };

  // Forgets instances silent past the bucket's max_age, so a fleet of short-lived names does not grow the maps.
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, s] of instances) if (now - s.lastPut > workerRegistryKeepMs && ![...s.leases.values()].some((l) => l.expiresAt > now)) instances.delete(id);
    for (const [leaseId, o] of leaseOwner) if (!instances.get(o.id)?.leases.has(leaseId)) leaseOwner.delete(leaseId);
  }, 60_000);
  sweep.unref();

  return {
    seen(call) {
      const { s, now } = touch(call);
      maybePut(s, now);
    },
    leased(call, leaseId, expiresAt) {
      const { s, now } = touch(call);
      s.leases.set(leaseId, { expiresAt: Date.parse(expiresAt), since: now });
      leaseOwner.set(leaseId, { id: s.id, instance: call.instance });
      putSoon(s, now);
    },
    renewed(leaseId, expiresAt) {
      const o = leaseOwner.get(leaseId);
      const l = o && instances.get(o.id)?.leases.get(leaseId);
      if (l) l.expiresAt = Date.parse(expiresAt);
    },
    finished(leaseId, ok) {
      const o = leaseOwner.get(leaseId);
      leaseOwner.delete(leaseId);
      const s = o && instances.get(o.id);
      const l = s?.leases.get(leaseId);
      if (!s || !l) return;
      s.leases.delete(leaseId);
      const now = Date.now();
      s.durations = [...s.durations, now - l.since].slice(-RECENT_DURATIONS);
      s.ended.push({ at: now, ok });
      putSoon(s, now);
    },
    instanceOf: (leaseId) => leaseOwner.get(leaseId)?.instance,
  };
}
