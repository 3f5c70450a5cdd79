import { jobTypes, type RpcReply, WorkerControlBody, workerControlSubject, workerRegistryBucket, workerRegistryKeepMs, type Instance, type JobTypeName, type Queue, type WorkerHeartbeat, type WorkerName, type WorkerState } from "@cutroom/contracts";
import type { Logger, NatsConnection } from "@cutroom/runtime";
import { StorageType } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { Worker } from "./worker.ts";

const encoder = new TextEncoder();

export interface WorkerRegistration {
  /** The instance's id in the registry, its control subject and GET /workers. */
  id: string;
  /** Puts the current heartbeat now (after a drain or resume, so readers see it at once). */
  beat: () => Promise<WorkerHeartbeat>;
  /** Says it stopped (gone at once for readers), and stops the heartbeats and the control subscription. */
  stop: () => Promise<void>;
}

/**
 * Registers this worker process in the NATS KV bucket the gateway watches (ADR 038) and heartbeats
 * there: one put per `heartbeatMs`, whatever the number of jobs, carrying its load and counts. The
 * bucket's max_age forgets an entry an hour after its last put. Also answers drain and resume on the
 * instance's own control subject with its heartbeat after the change.
 */
export function registerWorker(
  nc: NatsConnection,
  log: Logger,
  opts: { id: string; kind: WorkerName; queue: Queue; instance: Instance; version: string; heartbeatMs: number; worker: Worker },
): WorkerRegistration {
  const { id, kind, queue, instance, version, heartbeatMs, worker } = opts;
  const types = (Object.keys(jobTypes) as JobTypeName[]).filter((t) => jobTypes[t].queue === queue);
  let kv: Promise<KV> | undefined;
  let state: WorkerState = "running";
  let failing = false;

  const heartbeat = (): WorkerHeartbeat => {
    const load = worker.load();
    const stats = worker.stats.read();
    return {
      id,
      kind,
      queue,
      job_types: types,
      concurrency: load.concurrency,
      version,
      host: instance.host,
      pid: instance.pid,
      started_at: instance.started_at,
      heartbeat_ms: heartbeatMs,
      state: state === "stopped" ? "stopped" : load.draining ? "draining" : "running",
      pulling: load.pulling,
      in_flight: load.inFlight,
      free_slots: Math.max(0, load.concurrency - load.working),
      recent_durations_ms: stats.recentDurationsMs,
      jobs_done_last_hour: stats.doneLastHour,
      jobs_failed_last_hour: stats.failedLastHour,
      sent_at: new Date().toISOString(),
    };
  };

  // Whoever comes first makes the bucket (workers and the gateway ask for the same config); memory
  // storage, since a heartbeat is worth nothing after the next one.
  const bucket = () => (kv ??= new Kvm(nc).create(workerRegistryBucket, { history: 1, ttl: workerRegistryKeepMs, storage: StorageType.Memory }));
  const beat = async () => {
    const hb = heartbeat();
    try {
      await (await bucket()).put(id, JSON.stringify(hb));
      if (failing) log.info("worker heartbeats stored again");
      failing = false;
    } catch (err) {
      // The bucket may be gone with a broker that lost its store: made again on the next beat.
      kv = undefined;
      if (!failing) log.warn({ err }, "could not store the worker's heartbeat; trying again each interval");
      failing = true;
    }
    return hb;
  };

  const timer = setInterval(() => void beat(), heartbeatMs);
  timer.unref();
  void beat();

  const control = nc.subscribe(workerControlSubject(kind, id), {
    callback: (err, msg) => {
      if (err) return log.warn({ err }, "worker control subscription failed");
      const parsed = WorkerControlBody.safeParse(safeJson(msg));
      const respond = (reply: RpcReply) => msg.respond(encoder.encode(JSON.stringify(reply)));
      if (!parsed.success) return void respond({ ok: false, error: { code: "INVALID_INPUT", message: "expected {action: drain | resume}" } });
      if (parsed.data.action === "drain") worker.drain();
      else worker.resume();
      beat()
        .then((hb) => respond({ ok: true, data: hb }))
        .catch((e) => log.warn({ err: e }, "worker control reply failed"));
    },
  });

  return {
    id,
    beat,
    async stop() {
      clearInterval(timer);
      control.unsubscribe();
      state = "stopped";
      await beat();
    },
  };
}

function safeJson(msg: { json: () => unknown }): unknown {
  try {
    const body = msg.json() as { body?: unknown };
    // Sent in the RPC envelope ({request_id, caller, body}) or bare.
    return body && typeof body === "object" && "body" in body ? body.body : body;
  } catch {
    return undefined;
  }
}
