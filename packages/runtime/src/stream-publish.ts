import { headers as msgHeaders, type NatsConnection } from "@nats-io/transport-node";
import { replyInbox } from "./rpc-replies.ts";

/** What JetStream answers a stored message: its stream, its sequence, and whether it was a duplicate (same msgID). */
export interface StreamAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

/** JetStream refused the message: `api_error` is its error as nats.js's JetStreamApiError carries it (10071: wrong last sequence). */
export class StreamPublishError extends Error {
  constructor(readonly api_error: { code: number; err_code: number; description: string }) {
    super(api_error.description);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// nats.js's default for a JetStream publish.
const ACK_TIMEOUT_MS = 5_000;

/**
 * A JetStream publish whose ack comes to the connection's one reply subscription (ADR 032, ADR 034):
 * nats.js's js.publish() goes through its request(), which builds an Error with a stack trace per
 * call to reject a promise already resolved, and a subscription entry and a timer object of its own.
 * The broker's checks are the same (`msgID`: dropped as a duplicate within the stream's window;
 * `expectLastSubjectSequence`: refused unless the subject's last message has that sequence).
 * Rejects with StreamPublishError when the broker refuses, NoReply when none answers (no stream holds
 * the subject: `no_responders`; `timeout`; `unreachable`).
 */
export async function publishToStream(
  nc: NatsConnection,
  subject: string,
  payload: string,
  opts: { msgID?: string; expectLastSubjectSequence?: number; timeoutMs?: number } = {},
): Promise<StreamAck> {
  let h: ReturnType<typeof msgHeaders> | undefined;
  if (opts.msgID !== undefined || opts.expectLastSubjectSequence !== undefined) {
    h = msgHeaders();
    if (opts.msgID !== undefined) h.set("Nats-Msg-Id", opts.msgID);
    if (opts.expectLastSubjectSequence !== undefined) h.set("Nats-Expected-Last-Subject-Sequence", String(opts.expectLastSubjectSequence));
  }
  const reply = await replyInbox(nc).request(subject, encoder.encode(payload), opts.timeoutMs ?? ACK_TIMEOUT_MS, h);
  let ack: { stream?: unknown; seq?: unknown; duplicate?: unknown; error?: { code?: number; err_code?: number; description?: string } };
  try {
    ack = JSON.parse(decoder.decode(reply.data));
  } catch {
    throw new Error(`invalid JetStream ack for ${subject}`);
  }
  if (ack.error) throw new StreamPublishError({ code: ack.error.code ?? 0, err_code: ack.error.err_code ?? 0, description: ack.error.description ?? "JetStream refused the message" });
  if (typeof ack.stream !== "string" || ack.stream === "" || typeof ack.seq !== "number") throw new Error(`invalid JetStream ack for ${subject}`);
  return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true };
}
