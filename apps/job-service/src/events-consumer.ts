import { JobEvent, streams, subjects } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import { retrying, type Logger, type NatsConnection } from "@cutroom/runtime";
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { Timing } from "./env.ts";
import { foldEvents } from "./apply-event.ts";
import { applyEventToJob, raiseEventSeqs, readEventTargets, writeEventPatches, type EventsPatch } from "./job-store.ts";
import type { PipelineEngine } from "./pipelines.ts";

const durable = "job-service";
// Most events applied with one read and one write (ADR 028); more waiting make the next batch.
const MAX_BATCH = 500;
/** The events only job-service publishes: statuses (queued, running) and endings. Workers publish stages, progress and logs. */
const OWN_EVENTS: ReadonlySet<JobEvent["type"]> = new Set(["status", "result", "error"]);

export interface EventsConsumerDeps {
  db: Db;
  nc: NatsConnection;
  log: Logger;
  timing: Timing;
  /** Told of a pipeline job's progress, for the run's stage_progress event (ADR 026). */
  pipelines?: Pick<PipelineEngine, "jobProgressed">;
}

/**
 * Keeps each job row current from its events on JOB_EVENTS: one durable pull consumer shared by
 * every replica. The messages that arrived together are applied as one batch, one after another
 * batch, and a message is acked only once the row has it. Only stages, progress and the lease
 * come from events; job-service itself ends a job (finish, cancel) and publishes its terminal event.
 * When the broker loses the consumer or its stream (a server back with an empty store), the loop
 * makes it again and goes on: stage updates never stop for want of a restart.
 */
export async function startEventsConsumer(deps: EventsConsumerDeps): Promise<{ stop: () => Promise<void> }> {
  const { nc, log } = deps;
  const config = { durable_name: durable, ack_policy: AckPolicy.Explicit, ack_wait: 30 * 1_000_000_000, max_ack_pending: 1000 };
  let stopped = false;
  const open = async () => {
    if (stopped) return undefined;
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(streams.jobEvents.name, config).catch(async (err) => {
      // It exists with an older config: bring it up to date.
      if (!/already exists|in use/i.test((err as Error).message)) throw err;
      await jsm.consumers.update(streams.jobEvents.name, durable, config);
    });
    const consumer = await jetstream(nc).consumers.get(streams.jobEvents.name, durable);
    // Missing consumer or stream ends the iteration instead of waiting forever for one nobody makes.
    return consumer.consume({ max_messages: 100, abort_on_missing_resource: true });
  };
  let messages = await retrying(open, "could not open the job events consumer; trying again", { log });
  const batches = createBatcher(deps);

  const done = (async () => {
    while (messages && !stopped) {
      try {
        for await (const msg of messages) batches.add(msg);
      } catch (err) {
        log.warn({ err }, "the job events consumer stopped");
      }
      if (stopped) break;
      log.warn("opening the job events consumer again");
      messages = await retrying(open, "could not open the job events consumer; trying again", { log, retry: { firstMs: 500 } });
    }
  })();

  return {
    stop: async () => {
      stopped = true;
      await messages?.close();
      await done;
      await batches.idle();
    },
  };
}

/**
 * Collects the messages that arrive within `timing.eventsBatchMs` of the first (one turn of the event
 * loop when 0) and applies them as one batch, batches one at a time, in order; those that arrive while
 * a batch is written make the next one at once. Two statements a batch whatever its size: at a hundred
 * jobs a second, the events of one turn were one or two a batch (ADR 048).
 */
function createBatcher(deps: EventsConsumerDeps) {
  const waiting: JsMsg[] = [];
  let running: Promise<void> | undefined;
  const lingerMs = deps.timing.eventsBatchMs ?? 0;
  const run = async () => {
    while (waiting.length > 0) await applyBatch(deps, waiting.splice(0, MAX_BATCH));
    running = undefined;
  };
  return {
    add(msg: JsMsg) {
      waiting.push(msg);
      running ??= new Promise<void>((resolve) => (lingerMs > 0 ? setTimeout(resolve, lingerMs) : setImmediate(resolve))).then(run);
    },
    idle: () => running ?? Promise.resolve(),
  };
}

/**
 * Reads the batch's jobs, folds each one's events onto its row and writes every change in one
 * statement (writeEventPatches). A job whose row moved between the read and the write (a claim, a
 * finish, another replica) has its events applied one by one under a row lock, as before batching.
 */
async function applyBatch(deps: EventsConsumerDeps, msgs: JsMsg[]): Promise<void> {
  const byJob = new Map<string, { event: JobEvent; msg: JsMsg }[]>();
  const own = new Map<string, { seq: number; msgs: JsMsg[] }>();
  for (const msg of msgs) {
    // JOB_EVENTS carries pipelines' events too (ADR 026); the durable has no filter, as nats-server 2.9 cannot change one on an existing consumer.
    if (!msg.subject.startsWith(subjects.jobEvents(""))) {
      msg.ack();
      continue;
    }
    let event: JobEvent;
    try {
      event = JobEvent.parse(msg.json());
    } catch (err) {
      deps.log.warn({ err, subject: msg.subject }, "dropping a message that is not a job event");
      msg.term("not a job event");
      continue;
    }
    // job-service published it and wrote what it means to the row itself (the claim, the finish, an
    // admission): only its seq goes to the row, the floor of later publishers (raiseEventSeqs).
    if (OWN_EVENTS.has(event.type)) {
      const seen = own.get(event.job_id) ?? { seq: 0, msgs: [] };
      seen.seq = Math.max(seen.seq, event.seq);
      seen.msgs.push(msg);
      own.set(event.job_id, seen);
      continue;
    }
    byJob.set(event.job_id, [...(byJob.get(event.job_id) ?? []), { event, msg }]);
  }
  if (own.size > 0) {
    try {
      await raiseEventSeqs(deps.db, [...own].map(([id, { seq }]) => ({ id, seq })));
      for (const { msgs } of own.values()) for (const msg of msgs) msg.ack();
    } catch (err) {
      deps.log.warn({ err, events: own.size }, "could not record the seqs of job-service's own events; retrying");
      for (const { msgs } of own.values()) for (const msg of msgs) msg.nak(1000);
    }
  }
  if (byJob.size === 0) return;

  let written: Awaited<ReturnType<typeof writeEventPatches>>;
  const patches: EventsPatch[] = [];
  try {
    const rows = await readEventTargets(deps.db, [...byJob.keys()]);
    for (const row of rows) {
      const patch = foldEvents(row, byJob.get(row.id)!.map((e) => e.event));
      if (patch) patches.push({ id: row.id, was: row, patch });
    }
    written = await writeEventPatches(deps.db, patches, deps.timing.leaseMs);
  } catch (err) {
    deps.log.warn({ err, events: msgs.length }, "could not apply a batch of job events; retrying");
    for (const { msg } of [...byJob.values()].flat()) msg.nak(1000);
    return;
  }

  const changed = new Map(written.map((row) => [row.id, row]));
  const missed = new Set(patches.filter((p) => !changed.has(p.id)).map((p) => p.id));
  for (const [jobId, events] of byJob) {
    if (missed.has(jobId)) {
      for (const { event, msg } of events) await applyOne(deps, event, msg);
      continue;
    }
    // Applied, already applied, or for a job that ended or does not exist: nothing more to do with it.
    for (const { msg } of events) msg.ack();
    const row = changed.get(jobId);
    if (row && events.some(({ event }) => event.type === "progress")) deps.pipelines?.jobProgressed(row);
  }
}

async function applyOne(deps: EventsConsumerDeps, event: JobEvent, msg: JsMsg) {
  try {
    const row = await applyEventToJob(deps.db, event, deps.timing.leaseMs);
    msg.ack();
    if (row && event.type === "progress" && row.lastEventSeq === event.seq) deps.pipelines?.jobProgressed(row);
  } catch (err) {
    deps.log.warn({ err, job_id: event.job_id, seq: event.seq }, "could not apply a job event; retrying");
    msg.nak(1000);
  }
}
