import { subjects, type JobDispatch } from "@cutroom/contracts";
import type { JetStreamClient } from "@nats-io/jetstream";
import { markDispatched, type Conn, type JobRow } from "./job-store.ts";

/**
 * Hands a job to the workers as dispatch number `dispatch_count + 1`. The msgID makes a
 * retried publish of the same dispatch a no-op in the broker's duplicate window.
 */
export async function dispatchJob(js: JetStreamClient, db: Conn, row: JobRow): Promise<number> {
  const dispatch = row.dispatchCount + 1;
  const payload: JobDispatch = { job_id: row.id, user_id: row.userId, type: row.type, input: row.input, dispatch };
  await js.publish(subjects.jobRun(row.queue, row.type), JSON.stringify(payload), { msgID: `${row.id}:${dispatch}` });
  await markDispatched(db, row.id, dispatch);
  return dispatch;
}
