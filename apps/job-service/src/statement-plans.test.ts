import { clientOf, createDb, executePrepared, planCacheMode, sqlTag as sql, type SQL } from "@cutroom/db";
import { PgDialect } from "drizzle-orm/pg-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endedSince } from "./endings.ts";
import { endedPipelines, orphanedPipelineJobsSearch } from "./pipeline-store.ts";
import { overdueJobs } from "./job-control.ts";
import { admission, dispatchMarks, freeSlotsSweep, jobDbOptions, lockOverdueJobs, lockUndispatchedJobs, lockUnsettledJobs, usersWithFreeSlots } from "./job-store.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

const dialect = new PgDialect();

interface PlanNode {
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  "Rows Removed by Filter"?: number;
  Plans?: PlanNode[];
}

/** A scan of jobs.jobs or jobs.pipelines, by the table or by one of their indexes. */
const isJobsTable = (n: PlanNode) =>
  n["Relation Name"] === "jobs" || n["Relation Name"] === "pipelines" || /^(jobs|pipelines)_/.test(n["Index Name"] ?? "");

/** A value as a SQL literal, for a test's own statement. */
const literal = (v: unknown): string => {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return `array[${v.map(literal).join(", ")}]`;
  if (typeof v === "number") return String(v);
  return `'${(v instanceof Date ? v.toISOString() : String(v)).replaceAll("'", "''")}'`;
};

/**
 * The most rows any one scan of jobs.jobs or jobs.pipelines read when `query` ran (then rolled back), planned as
 * job-service's pool plans its prepared statements (jobDbOptions, ADR 060): generically, without the values in view. So it is
 * prepared and executed by name: an explain of the statement given its values plans with them in view.
 */
async function jobsRowsRead(stack: JobStack, query: SQL): Promise<number> {
  const { sql: text, params } = dialect.sqlToQuery(query);
  const conn = await clientOf(stack.db.db).reserve();
  try {
    await conn.unsafe("begin");
    // As job-service's own pool plans (jobDbOptions): the statement is explained as the service runs it.
    await conn.unsafe(`set local plan_cache_mode = ${planCacheMode(jobDbOptions.plans)}`);
    await conn.unsafe(`prepare planned as ${text}`).simple();
    const [prepared] = await conn.unsafe<{ types: string[] }[]>("select parameter_types::text[] as types from pg_prepared_statements where name = 'planned'");
    const types = prepared!.types;
    // EXECUTE inside EXPLAIN takes no protocol parameters: its values go as literals of the statement's types.
    const args = params.length === 0 ? "" : `(${params.map((p, i) => `${literal(p)}::${types[i]}`).join(", ")})`;
    const [row] = await conn.unsafe(`explain (analyze, format json) execute planned${args}`);
    // A scan's rows read: those it handed up and those its filter dropped.
    const read = (n: PlanNode) => (n["Actual Rows"] + (n["Rows Removed by Filter"] ?? 0)) * n["Actual Loops"];
    const walk = (n: PlanNode): number => Math.max(isJobsTable(n) ? read(n) : 0, ...(n.Plans ?? []).map(walk));
    return walk((row!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
  } finally {
    await conn.unsafe("rollback");
    await conn.unsafe("deallocate planned").catch(() => undefined);
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

  it("the reconciler's passes read the jobs and runs they may act on: endings since the last pass, unsettled, undispatched and orphaned jobs, not every job or run waiting or ended", async () => {
    const user = await stack.newUser(1000);
    const file_id = await stack.addFile(user, "ready", testImage);
    const job = (await stack.client.call("job", "create", { body: { type: "image.thumbnail", input: { file_id } } }, { caller: user })).job;
    // 800 pipeline runs that ended an hour ago, half of them failed; 800 jobs of theirs that ended then, and 3 that ended a minute ago.
    await stack.db.db.execute(sql`
      insert into jobs.pipelines (id, user_id, type, flavor, input, params, tier, status, stages, estimate, completed_at)
      select gen_random_uuid(), ${user.user_id}, 'product.video', 'default', '{}', '{}', 'pro', case when g % 2 = 0 then 'failed' else 'succeeded' end, '[]',
        '{"credits": 0, "eta_seconds": null}', now() - interval '1 hour'
      from generate_series(1, 800) g`);
    await stack.db.db.execute(sql`
      insert into jobs.jobs
      select (jsonb_populate_record(null::jobs.jobs, to_jsonb(j) || jsonb_build_object('id', gen_random_uuid(), 'idempotency_key', null, 'status', 'succeeded', 'credit_state', 'captured',
        'pipeline_id', p.id, 'completed_at', now() - case when g <= 800 then interval '1 hour' else interval '1 minute' end))).*
      from jobs.jobs j, (select id, row_number() over (order by id) as n from jobs.pipelines) p, generate_series(1, 803) g
      where j.id = ${job.id} and p.n = 1 + g % 800`);
    await stack.db.db.execute(sql`analyze jobs.jobs; analyze jobs.pipelines`);
    const since = new Date(Date.now() - 10 * 60_000);
    const found = await endedSince(stack.db.db, since, 1000);
    // Those 3, and any ending of the tests before; none of an hour ago.
    expect(found.filter((r) => r.completedAt! > new Date(Date.now() - 5 * 60_000)).length).toBeGreaterThanOrEqual(3);
    expect(found.every((r) => r.completedAt! > since)).toBe(true);
    expect(await jobsRowsRead(stack, endedSince(stack.db.db, since, 1000).getSQL())).toBeLessThan(50);
    // The reconciler's other passes over every job and run: each reads what it may act on.
    const tx = stack.db.db as unknown as Parameters<typeof lockUnsettledJobs>[0];
    const passes = [lockUnsettledJobs(tx, 1000).getSQL(), lockUndispatchedJobs(tx, 1000).getSQL(), lockOverdueJobs(tx, 60_000).getSQL(), overdueJobs(100)];
    passes.push(endedPipelines(stack.db.db, since, 1000).getSQL(), orphanedPipelineJobsSearch(1000, 100));
    for (const pass of passes) expect(await jobsRowsRead(stack, pass)).toBeLessThan(50);
  });

  it("job-service's pool plans a statement once per connection: an ending's admission, run again and again, keeps its generic plan", async () => {
    // Postgres's default planned this statement anew at every run: its array of users makes the generic
    // estimate look dearer than a plan for one user. That was 1.4 ms of planning a job's end (ADR 060).
    const user = await stack.newUser(1000);
    const pool = createDb(stack.db.url, { ...jobDbOptions, max: 1 });
    try {
      for (let i = 0; i < 8; i++) await executePrepared(pool.db, admission(sql`${sql.param([user.user_id])}::uuid[]`));
      const plans = await pool.sql<{ generic: number; custom: number }[]>`
        select generic_plans::int as generic, custom_plans::int as custom from pg_prepared_statements
        where statement like '%with waiting as%' and statement not like '%pg_prepared_statements%'`;
      expect(plans).toEqual([{ generic: 8, custom: 0 }]);
    } finally {
      await pool.close();
    }
  });
});
