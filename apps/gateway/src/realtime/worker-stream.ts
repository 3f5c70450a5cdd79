import type { WorkerHealthUpdate } from "@cutroom/contracts";
import type { WorkerRegistry } from "../worker-registry.ts";

/**
 * An admin's subscribe_workers: every instance as it is now, then each change of one's status, load or
 * jobs in hand. Every subscriber gets the same update object, so a socket's frame is serialised once.
 */
export function followWorkers(workers: WorkerRegistry, send: (update: WorkerHealthUpdate) => void): () => void {
  for (const i of workers.list()) send({ type: "worker_health", worker_id: i.id, kind: i.kind, status: i.status, load: i.load, active_jobs: i.in_flight });
  return workers.onChange(send);
}
