import { createHash } from "node:crypto";

/**
 * The id of the job a keyed request creates: a UUID (version 8, RFC 9562) from the sha256 of the user
 * and the Idempotency-Key, so a retry after a crash or a timeout names the same job and finds its
 * reservation instead of making another.
 */
export const jobIdFor = (userId: string, idempotencyKey: string): string => keyedId("cutroom.job", userId, idempotencyKey);

/** The id of the pipeline run a keyed POST /pipelines creates, as jobIdFor: every retry names the same run. */
export const pipelineIdFor = (userId: string, idempotencyKey: string): string => keyedId("cutroom.pipeline", userId, idempotencyKey);

function keyedId(kind: string, userId: string, idempotencyKey: string): string {
  const bytes = createHash("sha256").update(`${kind}\0${userId}\0${idempotencyKey}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
