import { clientOf, sqlTag as sql, type SQL } from "@cutroom/db";
import { PgDialect } from "drizzle-orm/pg-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admission, dispatchMarks, freeSlotsSweep, usersWithFreeSlots } from "./job-store.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

const dialect = new PgDialect();

interface PlanNode {
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  Plans?: PlanNode[];
}

/**
 * The most rows any one scan of jobs.jobs handed up when `query` ran (then rolled back), planned as
 * job-service's prepared statements end up planned: generically, without the values in view.
 */
async function jobsRowsRead(stack: JobStack, query: SQL): Promise<number> {
  const { sql: text, params } = dialect.sqlToQuery(query);
  const conn = await clientOf(stack.db.db).reserve();
  try {
    await conn.unsafe("begin");
    await conn.unsafe("set local plan_cache_mode = force_generic_plan");
    const [row] = await conn.unsafe(`explain (analyze, format json) ${text}`, params as never[]);
    const walk = (n: PlanNode): number => Math.max(n["Relation Name"] === "jobs" || n["Index Name"]?.startsWith("jobs_") ? n["Actual Rows"] * n["Actual Loops"] : 0, ...(n.Plans ?? []).map(walk));
    return walk((row!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
  } finally {
    await conn.unsafe("rollback");
    conn.release();
  }
}

describe("job-service's statements on a long line of waiting jobs, on real Postgres", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack();
  });
  afterAll(async () => stack?.stop());

  it("an ending's admission and a dispatch's mark read a few rows, not every job a user has waiting", async () => {
    const user = await stack.newUser(1000, "user", "free");
    const file_id = await stack.addFile(user, "ready", testImage);
    const create = async () => (await stack.client.call("job", "create", { body: { type: "image.thumbnail", input: { file_id } } }, { caller: user })).job;
    const running = await create();
    const held = await create();
    expect(held).toMatchObject({ queue_reason: "concurrency_limit" });
    // 600 more held behind it, as a backlog of a real user's would be.
    await stack.db.db.execute(sql`
      insert into jobs.jobs
      select (jsonb_populate_record(null::jobs.jobs, to_jsonb(j) || jsonb_build_object('id', gen_random_uuid(), 'idempotency_key', null, 'queue_order', j.queue_order + g))).*
      from jobs.jobs j, generate_series(1, 600) g where j.id = ${held.id}`);
    await stack.db.db.execute(sql`analyze jobs.jobs`);

    expect(await jobsRowsRead(stack, admission(sql`${sql.param([user.user_id])}::uuid[]`))).toBeLessThan(50);
    expect(await jobsRowsRead(stack, dispatchMarks([{ id: running.id, dispatch: 2, seq: 1 }]))).toBeLessThan(50);
  });

  it("the reconciler's search for a free slot a lost admission left reads a few rows per user, not every job waiting, and finds that user", async () => {
    const user = await stack.newUser(1000, "user", "free");
    const other = await stack.newUser(1000, "user", "free");
    const file_id = await stack.addFile(user, "ready", testImage);
    const otherFile = await stack.addFile(other, "ready", testImage);
    const create = async (caller: typeof user, id: string) => (await stack.client.call("job", "create", { body: { type: "image.thumbnail", input: { file_id: id } } }, { caller })).job;
    const running = await create(user, file_id);
    const held = await create(user, file_id);
    await create(other, otherFile);
    await create(other, otherFile);
    await stack.db.db.execute(sql`
      insert into jobs.jobs
      select (jsonb_populate_record(null::jobs.jobs, to_jsonb(j) || jsonb_build_object('id', gen_random_uuid(), 'idempotency_key', null, 'queue_order', j.queue_order + g))).*
      from jobs.jobs j, generate_series(1, 600) g where j.id = ${held.id}`);
    await stack.db.db.execute(sql`analyze jobs.jobs`);

    expect(await jobsRowsRead(stack, freeSlotsSweep(100))).toBeLessThan(50);
    expect(await usersWithFreeSlots(stack.db.db)).toEqual([]);
    // As a cancel that committed just before its process died, before its admission.
    await stack.db.db.execute(sql`update jobs.jobs set status = 'canceled', completed_at = now() where id = ${running.id}`);
    expect(await usersWithFreeSlots(stack.db.db)).toEqual([user.user_id]);
  });
});
