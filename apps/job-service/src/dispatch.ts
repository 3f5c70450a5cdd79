import { JobDispatch, streams, subjects } from "@cutroom/contracts";
import { publishToStream, readJobTrace, tracing, withTrace, type NatsConnection, type TraceContext } from "@cutroom/runtime";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { markDispatched, markDispatchedMany, type Conn, type JobRow } from "./job-store.ts";

/**
 * Hands a job to the workers as dispatch number `dispatch_count + 1`, and records the JOBS stream
 * sequence of its message (see dispatchHeld). The msgID makes a retried publish of the same
 * dispatch a no-op in the broker's duplicate window.
 */
export async function dispatchJob(js: JetStreamClient, db: Conn, row: JobRow): Promise<number> {
  const { dispatch, ack } = await publishDispatch(js, row);
  await markDispatched(db, row.id, dispatch, ack.seq);
  return dispatch;
}

/**
 * The dispatch's message, its ack coming to the connection's one reply subscription (publishToStream,
 * ADR 034) rather than through nats.js's js.publish, which costs an Error per call.
 */
function publishDispatch(js: JetStreamClient, row: JobRow, trace?: TraceContext) {
  if (!tracing.on) return sendDispatch(js, row);
  // In the job's own trace (ADR 036): the creating request's, kept in memory or read back from the job's first event.
  return (trace ? Promise.resolve(trace) : readJobTrace(connectionOf(js), row.id)).then((ctx) => withTrace(ctx, () => sendDispatch(js, row)));
}

function sendDispatch(js: JetStreamClient, row: JobRow) {
  const dispatch = row.dispatchCount + 1;
  const payload: JobDispatch = { job_id: row.id, user_id: row.userId, type: row.type, input: row.input, dispatch };
  // A duplicate publish is acked with the first one's seq, so the row always names the message that holds this dispatch.
  return publishToStream(connectionOf(js), subjects.jobRun(row.queue, row.type), JSON.stringify(payload), { msgID: `${row.id}:${dispatch}` }).then((ack) => ({ dispatch, ack }));
}

/** The connection a JetStream client publishes on: nats.js keeps it as `nc` (not in its types). */
function connectionOf(js: JetStreamClient): NatsConnection {
  const nc = (js as unknown as { nc?: NatsConnection }).nc;
  if (!nc) throw new Error("nats.js's JetStream client no longer shows its connection as nc");
  return nc;
}

/**
 * dispatchJob for many new jobs (a batch just created): the publishes go out together, and what
 * reached the broker is recorded in one statement. Answers, per row, the error of a publish that
 * failed (the reconciler dispatches those jobs later). `traces`: each new job's creating trace (tracing on).
 */
export async function dispatchJobs(js: JetStreamClient, db: Conn, rows: readonly JobRow[], traces?: ReadonlyMap<string, TraceContext>): Promise<(unknown | undefined)[]> {
  const sent = await Promise.allSettled(
    rows.map((row) => publishDispatch(js, row, traces?.get(row.id)).then(({ dispatch, ack }) => ({ id: row.id, dispatch, seq: ack.seq }))),
  );
  await markDispatchedMany(db, sent.flatMap((s) => (s.status === "fulfilled" ? [s.value] : [])));
  return sent.map((s) => (s.status === "rejected" ? s.reason : undefined));
}

/**
 * Whether the JOBS stream still holds the message of the job's last dispatch: a work queue keeps a
 * message until a worker acks it, so a dispatch whose message is gone was lost (a server back with
 * an empty store, a purge) unless its job moved on. Looked up by the seq recorded at dispatch, and
 * checked to be this job's: a stream made again after a loss hands the same sequences to other jobs.
 * A job dispatched before the seq was recorded counts as lost: a second dispatch is harmless (the
 * claim lets one worker run it), a job waiting forever is not.
 */
export async function dispatchHeld(jsm: JetStreamManager, row: JobRow): Promise<boolean> {
  if (row.dispatchSeq == null) return false;
  const stored = await jsm.streams.getMessage(streams.jobs.name, { seq: row.dispatchSeq });
  if (!stored) return false;
  const held = JobDispatch.safeParse(stored.json());
  return held.success && held.data.job_id === row.id && held.data.dispatch === row.dispatchCount;
}
