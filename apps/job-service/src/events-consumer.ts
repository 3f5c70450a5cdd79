import { JobEvent, streams } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import type { Logger, NatsConnection } from "@cutroom/runtime";
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { Timing } from "./env.ts";
import { applyEventToJob } from "./job-store.ts";

const durable = "job-service";

export interface EventsConsumerDeps {
  db: Db;
  nc: NatsConnection;
  log: Logger;
  timing: Timing;
}

/**
 * Keeps each job row current from its events on JOB_EVENTS: one durable pull consumer shared by
 * every replica. A message is acked only once the row has it. Only stages, progress and the lease
 * come from events; job-service itself ends a job (finish, cancel) and publishes its terminal event.
 */
export async function startEventsConsumer(deps: EventsConsumerDeps): Promise<{ stop: () => Promise<void> }> {
  const { nc, log } = deps;
  const jsm = await jetstreamManager(nc);
  const config = { durable_name: durable, ack_policy: AckPolicy.Explicit, ack_wait: 30 * 1_000_000_000, max_ack_pending: 1000 };
  await jsm.consumers.add(streams.jobEvents.name, config).catch(async (err) => {
    // It exists with an older config: bring it up to date.
    if (!/already exists|in use/i.test((err as Error).message)) throw err;
    await jsm.consumers.update(streams.jobEvents.name, durable, config);
  });
  const consumer = await jetstream(nc).consumers.get(streams.jobEvents.name, durable);
  const messages = await consumer.consume({ max_messages: 100 });

  const done = (async () => {
    for await (const msg of messages) await handle(deps, msg);
  })().catch((err) => log.error({ err }, "job events consumer stopped"));

  return {
    stop: async () => {
      await messages.close();
      await done;
    },
  };
}

async function handle(deps: EventsConsumerDeps, msg: JsMsg) {
  let event: JobEvent;
  try {
    event = JobEvent.parse(msg.json());
  } catch (err) {
    deps.log.warn({ err, subject: msg.subject }, "dropping a message that is not a job event");
    msg.term("not a job event");
    return;
  }
  try {
    await applyEventToJob(deps.db, event, deps.timing.leaseMs);
    msg.ack();
  } catch (err) {
    deps.log.warn({ err, job_id: event.job_id, seq: event.seq }, "could not apply a job event; retrying");
    msg.nak(1000);
  }
}
