import { isAppError } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { JobRow } from "./job-store.ts";
import { outputOrder } from "./project-store.ts";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

describe("a project's output order", () => {
  const job = (id: string, files: string[], pipeline?: { id: string; stage: string; order: number }) =>
    ({ id, result: { files: files.map((file_id) => ({ file_id })) }, pipelineId: pipeline?.id ?? null, pipelineStage: pipeline?.stage ?? null, pipelineOrder: pipeline?.order ?? null }) as unknown as JobRow;

  it("numbers a job's outputs in its result's order, and a pipeline stage's outputs across its jobs in their stage order", () => {
    const run = "run-1";
    const order = outputOrder([
      job("direct", ["a", "b"]),
      job("clip-2", ["c2"], { id: run, stage: "clips", order: 1 }),
      job("clip-1", ["c1"], { id: run, stage: "clips", order: 0 }),
      job("images", ["i1", "i2"], { id: run, stage: "images", order: 0 }),
      job("other-run", ["x"], { id: "run-2", stage: "clips", order: 0 }),
    ]);
    expect(Object.fromEntries(order)).toEqual({ a: 0, b: 1, c1: 0, c2: 1, i1: 0, i2: 1, x: 0 });
  });
});

describe("projects in job-service", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack();
  });
  afterAll(async () => stack?.stop());

  it("cancels and refunds a job whose enqueue was committing while its project was deleted", async () => {
    const user = await stack.newUser(100);
    const project = await stack.client.call("job", "createProject", { name: "race" }, { caller: user });
    const body = { type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width: 318 }, project_id: project.id };
    // The job's insert stalls after its checks passed: the delete comes in between.
    await stack.db.sql.unsafe(`
      create or replace function jobs.stall_test_insert() returns trigger language plpgsql as $$
      begin
        if new.input->>'width' = '318' then perform pg_sleep(0.5); end if;
        return new;
      end $$;
      create trigger stall_test_insert before insert on jobs.jobs for each row execute function jobs.stall_test_insert();`);
    try {
      const creating = stack.client.call("job", "create", { body }, { caller: user });
      await vi.waitFor(
        async () => {
          const [sleeping] = await stack.db.sql`select count(*)::int as n from pg_stat_activity where wait_event = 'PgSleep' and datname = current_database()`;
          expect(sleeping!.n).toBe(1);
        },
        { timeout: 5000, interval: 20 },
      );
      const deleted = await stack.client.call("job", "deleteProject", { project_id: project.id }, { caller: user });
      const { job } = await creating;
      expect(deleted).toMatchObject({ jobs_canceled: 1, credits_refunded: job.credits.amount });
      expect(await stack.client.call("job", "get", { job_id: job.id }, { caller: user })).toMatchObject({ status: "canceled", credits: { state: "released" } });
    } finally {
      await stack.db.sql.unsafe("drop trigger stall_test_insert on jobs.jobs; drop function jobs.stall_test_insert()");
    }
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("refuses a job in a deleted project with 404, holding no credits", async () => {
    const user = await stack.newUser(100);
    const project = await stack.client.call("job", "createProject", { name: "gone" }, { caller: user });
    await stack.client.call("job", "deleteProject", { project_id: project.id }, { caller: user });
    const body = { type: "image.resize", input: { file_id: await stack.addFile(user, "ready", testImage), width: 64 }, project_id: project.id };
    const refused = await stack.client.call("job", "create", { body }, { caller: user }).catch((err: unknown) => err);
    expect(isAppError(refused) && refused.code).toBe("NOT_FOUND");
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("finishes a delete again when retried: a deleted project of the caller is deleted once more, another user's is 404", async () => {
    const user = await stack.newUser(100);
    const other = await stack.newUser(100);
    const project = await stack.client.call("job", "createProject", { name: "twice" }, { caller: user });
    await stack.client.call("job", "deleteProject", { project_id: project.id }, { caller: user });
    expect(await stack.client.call("job", "deleteProject", { project_id: project.id }, { caller: user })).toEqual({ jobs_canceled: 0, credits_refunded: 0, files_deleted: 0 });
    const foreign = await stack.client.call("job", "deleteProject", { project_id: project.id }, { caller: other }).catch((err: unknown) => err);
    expect(isAppError(foreign) && foreign.code).toBe("NOT_FOUND");
  });
});
