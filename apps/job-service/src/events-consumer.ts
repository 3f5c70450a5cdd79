import { JobEvent, streams, terminalStatuses } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import type { Logger, NatsConnection, RpcClient } from "@cutroom/runtime";
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { settleCredits } from "./credits.ts";
import type { Timing } from "./env.ts";
import { applyEventToJob } from "./job-store.ts";

const durable = "job-service";

export interface EventsConsumerDeps {
  db: Db;
  nc: NatsConnection;
  rpc: RpcClient;
  log: Logger;
  timing: Timing;
}

/**
 * Keeps each job row current from its events on JOB_EVENTS: one durable pull consumer shared by
 * every replica. A message is acked only once the row (and, for a finished job, billing) has it.
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
    await applyJobEvent(deps, event);
    msg.ack();
  } catch (err) {
    deps.log.warn({ err, job_id: event.job_id, seq: event.seq }, "could not apply a job event; retrying");
    msg.nak(1000);
  }
}

/**
 * Applies an event and, when the job is finished with credits still held, settles them. A redelivered
 * event changes no row but still retries a settle that failed, and billing settles a job only once.
 */
export async function applyJobEvent({ db, rpc, timing }: EventsConsumerDeps, event: JobEvent) {
  const row = await applyEventToJob(db, event, timing.leaseMs);
  if (row && terminalStatuses.includes(row.status) && row.creditState === "reserved") await settleCredits(db, rpc, row);
}
