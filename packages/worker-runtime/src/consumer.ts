import { consumers, streams, subjects, type Queue } from "@cutroom/contracts";
import type { NatsConnection } from "@cutroom/runtime";
import { AckPolicy, jetstreamManager, type ConsumerConfig } from "@nats-io/jetstream";

const nanos = (ms: number) => ms * 1_000_000;

export const consumerName = (queue: Queue) => consumers.worker(queue);

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
    // No `backoff`: with one, nats-server 2.9 adds (backoff[n] - ack_wait) to every nak(delay) of the
    // n-th redelivery (a 4 s retry became 34 s), so the delay a worker announces was not the one applied.
    // Undefined rather than absent, so an update also clears the backoff of a consumer made before.
    backoff: undefined,
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
