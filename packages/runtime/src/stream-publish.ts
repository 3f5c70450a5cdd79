import { headers as msgHeaders, type NatsConnection } from "@nats-io/transport-node";
import { replyInbox } from "./rpc-replies.ts";
import { injectTrace, inSpan, SpanKind, tracing } from "./tracing.ts";

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
export function publishToStream(nc: NatsConnection, subject: string, payload: string, opts: StreamPublishOptions = {}): Promise<StreamAck> {
  if (!tracing.on) return publish(nc, subject, payload, opts);
  // A producer span whose context rides in the message's traceparent header: the consumer's span is its child (ADR 036).
  const kind = subject.slice(0, subject.indexOf(".", subject.indexOf(".") + 1));
  return inSpan(`publish ${kind}`, { kind: SpanKind.PRODUCER, attributes: { "messaging.system": "nats", "messaging.destination.name": subject } }, () => publish(nc, subject, payload, opts, true));
}

interface StreamPublishOptions {
  msgID?: string;
  expectLastSubjectSequence?: number;
  timeoutMs?: number;
}

async function publish(nc: NatsConnection, subject: string, payload: string, opts: StreamPublishOptions, traced = false): Promise<StreamAck> {
  let h: ReturnType<typeof msgHeaders> | undefined;
  if (opts.msgID !== undefined || opts.expectLastSubjectSequence !== undefined) {
    h = msgHeaders();
    if (opts.msgID !== undefined) h.set("Nats-Msg-Id", opts.msgID);
    if (opts.expectLastSubjectSequence !== undefined) h.set("Nats-Expected-Last-Subject-Sequence", String(opts.expectLastSubjectSequence));
  }
  if (traced) h = injectTrace(h);
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
