import { streams, subjects, type Queue } from "@cutroom/contracts";
import type { NatsConnection } from "@cutroom/runtime";
import { AckPolicy, jetstreamManager, type ConsumerConfig } from "@nats-io/jetstream";

const nanos = (ms: number) => ms * 1_000_000;

export const consumerName = (queue: Queue) => `worker-${queue}`;

/**
 * Creates or updates the durable pull consumer every replica of a queue's worker shares.
 * `filter_subject` (singular) because nats-server 2.9 has no `filter_subjects`.
 */
export async function ensureWorkerConsumer(nc: NatsConnection, queue: Queue, opts: { ackWaitMs: number; maxAttempts: number }): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const name = consumerName(queue);
  const tunable: Partial<ConsumerConfig> = {
    ack_wait: nanos(opts.ackWaitMs),
    max_deliver: opts.maxAttempts,
    // Redelivery after a worker died mid-job (no ack, no nak) waits longer each time. The server
    // takes backoff[0] as the ack wait, and wants fewer steps than deliveries.
    backoff: Array.from({ length: opts.maxAttempts - 1 }, (_, i) => nanos(opts.ackWaitMs * (i + 1))),
  };
  try {
    await jsm.consumers.info(streams.jobs.name, name);
  } catch (err) {
    if (!/not found/i.test((err as Error).message)) throw err;
    await jsm.consumers.add(streams.jobs.name, {
      durable_name: name,
      filter_subject: subjects.jobRunQueue(queue),
      ack_policy: AckPolicy.Explicit,
      ...tunable,
    });
    return;
  }
  await jsm.consumers.update(streams.jobs.name, name, tunable);
}
