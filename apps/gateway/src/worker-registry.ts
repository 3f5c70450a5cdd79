import { AppError, RpcReply, WorkerHeartbeat, workerControlSubject, workerInstance, workerRegistryBucket, workerRegistryKeepMs, type WorkerControlBody, type WorkerHealthUpdate, type WorkerInstance } from "@cutroom/contracts";
import type { Logger, NatsConnection } from "@cutroom/runtime";
import { Kvm, type KvEntry } from "@nats-io/kv";
import { updateHttpWorkerRecord } from "./http-worker-registry.ts";

export interface WorkerRegistry {
  /** Every instance the registry holds, judged now: healthy, unhealthy, draining or gone. */
  list: () => WorkerInstance[];
  /** One instance judged now; undefined for an id the registry does not hold. */
  get: (id: string) => WorkerInstance | undefined;
  /** Asks the instance to drain or resume over its control subject (a worker over HTTP: sets its stored state) and answers it as it is after. */
  control: (id: string, action: WorkerControlBody["action"]) => Promise<WorkerInstance>;
  /** Whether the instance's record says draining, whatever its health: a worker over HTTP is then given no job. */
  draining: (id: string) => boolean;
  /** Called with each change of an instance's status, load or jobs in hand; returns the unsubscribe. */
  onChange: (listener: (update: WorkerHealthUpdate) => void) => () => void;
  stop: () => Promise<void>;
}

const isMissingBucket = (err: unknown) => /stream not found|bucket not found/i.test((err as Error)?.message ?? "");
const CONTROL_TIMEOUT_MS = 2000;

const update = (i: WorkerInstance): WorkerHealthUpdate => ({ type: "worker_health", worker_id: i.id, kind: i.kind, status: i.status, load: i.load, active_jobs: i.in_flight });
const sameUpdate = (a: WorkerHealthUpdate, b: WorkerHealthUpdate) => a.status === b.status && a.load === b.load && a.active_jobs === b.active_jobs;

/**
 * The workers' registry (ADR 038), watched from its NATS KV bucket into a map: GET /workers reads
 * the map, and a sweep re-judges every instance against the clock, since a dead one says nothing:
 * two heartbeats missed read as unhealthy, `goneAfterMs` without one as gone. Each change of an
 * instance's status, load or jobs in hand goes to the listeners (WS /ws subscribe_workers). The
 * bucket is the workers' to make: until one did, the registry is empty and the watch waits for it.
 */
export function watchWorkerRegistry(nc: NatsConnection, log: Logger, opts: { goneAfterMs: number; retryMs?: number }): WorkerRegistry {
  const beats = new Map<string, WorkerHeartbeat>();
  const last = new Map<string, WorkerHealthUpdate>();
  const listeners = new Set<(u: WorkerHealthUpdate) => void>();
  let stopped = false;
  let stopWatch: (() => void) | undefined;

  const judge = (hb: WorkerHeartbeat) => workerInstance(hb, Date.now(), opts.goneAfterMs);
  const announce = (instance: WorkerInstance) => {
    const next = update(instance);
    const before = last.get(instance.id);
    if (before && sameUpdate(before, next)) return;
    last.set(instance.id, next);
    for (const listener of listeners) listener(next);
  };
  const apply = (hb: WorkerHeartbeat) => {
    const known = beats.get(hb.id);
    // A watch may deliver an older put after a control reply already applied a newer one.
    if (known && Date.parse(known.sent_at) > Date.parse(hb.sent_at)) return;
    beats.set(hb.id, hb);
    announce(judge(hb));
  };
  const applyEntry = (e: KvEntry) => {
    if (e.operation !== "PUT") {
      beats.delete(e.key);
      last.delete(e.key);
      return;
    }
    const parsed = WorkerHeartbeat.safeParse(safeJson(e));
    if (!parsed.success) return log.warn({ worker_id: e.key }, "malformed worker heartbeat ignored");
    apply(parsed.data);
  };

  // The clock moves statuses on (unhealthy, gone) without any put; the bucket's max_age drops entries silently.
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, hb] of beats) {
      if (now - Date.parse(hb.sent_at) > workerRegistryKeepMs) {
        beats.delete(id);
        last.delete(id);
        continue;
      }
      announce(judge(hb));
    }
  }, Math.max(50, Math.min(1000, Math.floor(opts.goneAfterMs / 4))));
  sweep.unref();

  const run = async () => {
    let waitingSaid = false;
    while (!stopped) {
      try {
        const kv = await new Kvm(nc).open(workerRegistryBucket);
        await kv.status();
        const watch = await kv.watch();
        stopWatch = () => watch.stop();
        for await (const e of watch) applyEntry(e);
      } catch (err) {
        if (stopped) return;
        if (!isMissingBucket(err)) log.warn({ err }, "worker registry watch failed; retrying");
        else if (!waitingSaid) log.info("waiting for a worker to create the worker registry bucket");
        waitingSaid = true;
      }
      if (!stopped) await new Promise((r) => setTimeout(r, opts.retryMs ?? 1000));
    }
  };
  void run();

  const byId = (id: string) => {
    const hb = beats.get(id);
    return hb && judge(hb);
  };

  return {
    list: () => [...beats.values()].map(judge).sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id)),
    get: byId,
    draining: (id) => beats.get(id)?.state === "draining",
    async control(id, action) {
      const known = byId(id);
      if (!known) throw new AppError("NOT_FOUND", `no worker instance ${id}`);
      // A worker over HTTP hears nothing: its state is set in its record, which every gateway's lease route reads.
      if (known.kind === "http") {
        const kv = await new Kvm(nc).open(workerRegistryBucket);
        const state = action === "drain" ? "draining" : "running";
        const hb = await updateHttpWorkerRecord(kv, id, (stored) => stored && { ...stored, state });
        if (!hb) throw new AppError("NOT_FOUND", `no worker instance ${id}`);
        log.info({ worker_id: id, action }, "worker over HTTP told to drain or resume");
        apply(hb);
        return judge(beats.get(id) ?? hb);
      }
      let reply: RpcReply;
      try {
        const msg = await nc.request(workerControlSubject(known.kind, id), JSON.stringify({ action }), { timeout: CONTROL_TIMEOUT_MS });
        reply = RpcReply.parse(msg.json());
      } catch (err) {
        log.info({ err, worker_id: id }, "worker instance did not answer its control request");
        throw new AppError("CONFLICT", `worker instance ${id} does not answer (status ${known.status}): it cannot ${action}`);
      }
      if (!reply.ok) throw new AppError("INTERNAL", reply.error.message);
      const hb = WorkerHeartbeat.parse(reply.data);
      apply(hb);
      return judge(beats.get(id) ?? hb);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop() {
      stopped = true;
      clearInterval(sweep);
      stopWatch?.();
    },
  };
}

function safeJson(e: KvEntry): unknown {
  try {
    return e.json();
  } catch {
    return undefined;
  }
}
