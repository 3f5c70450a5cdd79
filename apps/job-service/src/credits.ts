import type { CallContext, RpcClient } from "@cutroom/runtime";
import { countSettled } from "./job-metrics.ts";
import { setCreditState, type Conn, type JobRow } from "./job-store.ts";

/**
 * Settles a finished job's reservation: capture on success, release otherwise. Billing settles
 * a job once, so calling this again (a redelivered event, a retry) refunds or charges nothing more.
 */
export async function settleCredits(db: Conn, rpc: RpcClient, row: JobRow, ctx: CallContext = {}): Promise<JobRow> {
  const reply =
    row.status === "succeeded"
      ? await rpc.call("billing", "capture", { job_id: row.id }, ctx)
      : await rpc.call("billing", "release", { job_id: row.id }, ctx);
  // "none": billing holds nothing for the job, so there is nothing left to give back.
  const state = reply.state === "captured" ? "captured" : "released";
  const settled = (await setCreditState(db, row.id, state)) ?? row;
  if (row.creditState === "reserved") countSettled(settled);
  return settled;
}
