import { consumers, streams, subjects, type Queue } from "@cutroom/contracts";
import type { Logger, NatsConnection } from "@cutroom/runtime";
import { AckPolicy, jetstream, jetstreamManager, type Consumer, type ConsumerConfig } from "@nats-io/jetstream";

const nanos = (ms: number) => ms * 1_000_000;

export const consumerName = (queue: Queue) => consumers.worker(queue);

/**
 * Creates or updates the durable pull consumer every replica of a queue's worker shares.
 * `filter_subject` (singular) because nats-server 2.9 has no `filter_subjects`.
 */
export async function ensureWorkerConsumer(nc: NatsConnection, queue: Queue, opts: { ackWaitMs: number }): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const name = consumerName(queue);
  const tunable: Partial<ConsumerConfig> = {
    ack_wait: nanos(opts.ackWaitMs),
    // Unlimited: a message whose max_deliver ran out stays in the work queue undelivered (nats-server
    // does so by design), where job-service takes it for the job still held and the job runs forever.
    // The worker enforces JOB_MAX_ATTEMPTS itself (runDelivery); an update lifts an older limit too.
    max_deliver: -1,
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

/**
 * After a failed pull: the queue's consumer, made again when the broker lost it (a server back with
 * an empty store), so the worker keeps consuming without a restart. Null while the JOBS stream is
 * missing too: workers may not make streams, job-service makes it again (keepStreams), and the next
 * failed pull tries again.
 */
export async function reopenWorkerConsumer(nc: NatsConnection, queue: Queue, opts: { ackWaitMs: number }, log: Logger): Promise<Consumer | null> {
  const jsm = await jetstreamManager(nc);
  const name = consumerName(queue);
  try {
    await jsm.consumers.info(streams.jobs.name, name);
  } catch (err) {
    if (!/not found/i.test((err as Error).message)) throw err;
    try {
      await ensureWorkerConsumer(nc, queue, opts);
    } catch (createErr) {
      if (!/stream not found/i.test((createErr as Error).message)) throw createErr;
      log.warn({ stream: streams.jobs.name }, "the JOBS stream is gone; waiting for job-service to make it again");
      return null;
    }
    log.warn({ consumer: name }, "made the worker's consumer again: the broker had lost it");
  }
  return jetstream(nc).consumers.get(streams.jobs.name, name);
}
