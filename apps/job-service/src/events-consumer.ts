import { JobEvent, streams, subjects } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import { retrying, type Logger, type NatsConnection } from "@cutroom/runtime";
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { Timing } from "./env.ts";
import { applyEventToJob } from "./job-store.ts";
import type { PipelineEngine } from "./pipelines.ts";

const durable = "job-service";

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
 * every replica. A message is acked only once the row has it. Only stages, progress and the lease
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

  const done = (async () => {
    while (messages && !stopped) {
      try {
        for await (const msg of messages) await handle(deps, msg);
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
    },
  };
}

async function handle(deps: EventsConsumerDeps, msg: JsMsg) {
  // JOB_EVENTS carries pipelines' events too (ADR 026); the durable has no filter, as nats-server 2.9 cannot change one on an existing consumer.
  if (!msg.subject.startsWith(subjects.jobEvents(""))) return msg.ack();
  let event: JobEvent;
  try {
    event = JobEvent.parse(msg.json());
  } catch (err) {
    deps.log.warn({ err, subject: msg.subject }, "dropping a message that is not a job event");
    msg.term("not a job event");
    return;
  }
  try {
    const row = await applyEventToJob(deps.db, event, deps.timing.leaseMs);
    msg.ack();
    if (row && event.type === "progress" && row.lastEventSeq === event.seq) deps.pipelines?.jobProgressed(row);
  } catch (err) {
    deps.log.warn({ err, job_id: event.job_id, seq: event.seq }, "could not apply a job event; retrying");
    msg.nak(1000);
  }
}
