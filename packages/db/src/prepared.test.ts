import { createTestDatabase } from "@cutroom/devstack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, executePrepared, sqlTag as sql, type DbHandle } from "./index.ts";

describe("executePrepared (ADR 043)", () => {
  let test: Awaited<ReturnType<typeof createTestDatabase>>;
  let handle: DbHandle;
  beforeAll(async () => {
    test = await createTestDatabase("prepared");
    // One connection, so every call below meets the statements the earlier ones prepared.
    handle = createDb(test.url, { max: 1 });
  });
  afterAll(async () => {
    await handle?.close();
    await test?.drop();
  });

  const query = (ids: string[]) => sql`select n, n * 2 as twice, ${"label"}::text as label from unnest(${sql.param(ids)}::int[]) as t(n) order by n`;

  it("answers what execute answers, and prepares each text once per connection whatever the values", async () => {
    const { db } = handle;
    expect([...(await executePrepared(db, query(["1", "2"])))]).toEqual([...(await db.execute(query(["1", "2"])))]);
    expect([...(await executePrepared(db, query(["3"])))]).toEqual([{ n: 3, twice: 6, label: "label" }]);
    expect([...(await executePrepared(db, query([])))]).toEqual([]);
    const prepared = await db.execute<{ statement: string }>(sql`select statement from pg_prepared_statements where statement like '%unnest%'`);
    expect(prepared.length).toBe(1);
  });

  it("runs inside a transaction on its connection, and rolls back with it", async () => {
    const { db } = handle;
    await db.execute(sql`create table if not exists prepared_rows (id int primary key)`);
    await expect(
      db.transaction(async (tx) => {
        await executePrepared(tx, sql`insert into prepared_rows (id) values (${1})`);
        expect([...(await executePrepared(tx, sql`select count(*)::int as n from prepared_rows`))]).toEqual([{ n: 1 }]);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect([...(await executePrepared(db, sql`select count(*)::int as n from prepared_rows`))]).toEqual([{ n: 0 }]);
  });
});
