import { z } from "zod";
import { Uuid } from "./common.ts";
import { Queue } from "./job-types.ts";
import { Job } from "./jobs.ts";

/** One worker queue's load: the jobs' rows in Postgres, and what its JetStream consumer holds. */
export const QueueDepth = z.object({
  queue: Queue,
  queued: z.number().int().describe("jobs waiting (status queued), including those held for a concurrency slot"),
  held: z.number().int().describe("of the queued, those held for their owner's concurrency slot (not dispatched yet)"),
  running: z.number().int().describe("jobs a worker has claimed (status running)"),
  pending: z.number().int().nullable().describe("messages the queue's consumer has not delivered yet; null when the consumer does not exist (no worker of the kind started)"),
  ack_pending: z.number().int().nullable().describe("messages delivered to a worker and not acknowledged yet; null as pending"),
});
export type QueueDepth = z.infer<typeof QueueDepth>;
export const QueuesReply = z.object({ data: z.array(QueueDepth) });
export type QueuesReply = z.infer<typeof QueuesReply>;

/**
 * A failed job run again: a new job of the same owner, type, input and project, with its own
 * reservation. Asking again for the same failed job answers the same new job (`created: false`).
 */
export const RequeueReply = z.object({ job: Job, requeued_from: Uuid, created: z.boolean() });
export type RequeueReply = z.infer<typeof RequeueReply>;
