import { AppError, isTerminalEvent, terminalStatuses, type Caller, type Job, type JobEvent } from "@cutroom/contracts";
import { readJobEvents, readLastJobEvent, type Logger, type NatsConnection, type RpcClient } from "@cutroom/runtime";
import type { EventHub } from "./event-hub.ts";

export type StreamItem = { type: "snapshot"; job: Job } | JobEvent;

/**
 * Follows one job for one client: the snapshot first, then the stored events after `since`
 * (or, when the job has ended, its terminal event), then live events, in seq order with
 * no gaps or repeats. Live events are buffered while the replay is read, so none slip between.
 * Throws NOT_FOUND (AppError) when the job is not the caller's, SERVICE_UNAVAILABLE when the stored
 * events cannot be read (NATS down or not answering), logged on `log` (the request's, with its id).
 */
export async function followJob(opts: {
  rpc: RpcClient;
  nc: NatsConnection;
  hub: EventHub;
  caller: Caller;
  requestId: string;
  log: Pick<Logger, "warn">;
  jobId: string;
  since?: number;
  send: (item: StreamItem) => void;
  onEnd: () => void;
}): Promise<() => void> {
  let lastSeq = opts.since ?? 0;
  let replaying = true;
  let ended = false;
  const buffered: JobEvent[] = [];

  const deliver = (e: JobEvent) => {
    if (ended || e.seq <= lastSeq) return;
    lastSeq = e.seq;
    opts.send(e);
    if (isTerminalEvent(e)) {
      ended = true;
      stop();
      opts.onEnd();
    }
  };
  const stop = opts.hub.listen(opts.jobId, (e) => (replaying ? buffered.push(e) : deliver(e)));

  try {
    const job = await opts.rpc.call("job", "get", { job_id: opts.jobId }, { requestId: opts.requestId, caller: opts.caller });
    opts.send({ type: "snapshot", job });
    if (opts.since !== undefined) {
      for (const e of await history(opts, () => readJobEvents(opts.nc, opts.jobId, opts.since))) deliver(e);
    } else {
      // A fresh watcher gets live events only, but always the ending if there already is one.
      const last = await history(opts, () => readLastJobEvent(opts.nc, opts.jobId));
      if (last && isTerminalEvent(last)) {
        lastSeq = last.seq - 1;
        deliver(last);
      } else {
        lastSeq = last?.seq ?? 0;
      }
    }
    // Events older than the stream keeps: the snapshot alone tells the job has ended.
    if (!ended && terminalStatuses.includes(job.status) && !buffered.some(isTerminalEvent)) {
      ended = true;
      stop();
      opts.onEnd();
      return () => {};
    }
    replaying = false;
    for (const e of buffered.sort((a, b) => a.seq - b.seq)) deliver(e);
  } catch (err) {
    stop();
    throw err;
  }
  return () => {
    ended = true;
    stop();
  };
}

/** A read of the job's stored events; its failure is the events store being unavailable, not a bug (503). */
async function history<T>(opts: { log: Pick<Logger, "warn">; jobId: string; since?: number }, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    opts.log.warn({ err, job_id: opts.jobId, since: opts.since }, "could not read the job's stored events");
    throw new AppError("SERVICE_UNAVAILABLE", "job events are unavailable right now; try again shortly", { service: "events" });
  }
}
