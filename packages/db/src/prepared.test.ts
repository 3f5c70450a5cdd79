import { createTestDatabase } from "@cutroom/devstack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, executePrepared, sqlTag as sql, transactionInOneTrip, transactionPipelined, type DbHandle } from "./index.ts";

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

  it("sends statements in the order they were asked for, also when an earlier one is awaited after later ones", async () => {
    const { db } = handle;
    const seen = await db.transaction(async (tx) => {
      // As job creation does: a setting asked for first, statements of helpers (which await at once) after it, all awaited together.
      const setting = executePrepared(tx, sql`select set_config('cutroom.order', ${"set first"}, true)`);
      const read = (async () => (await executePrepared<{ v: string | null }>(tx, sql`select current_setting('cutroom.order', true) as v`))[0]!.v)();
      const [, v] = await Promise.all([setting, read]);
      return v;
    });
    expect(seen).toBe("set first");
  });

  it("runs statements as one transaction in one round trip: each sees the ones before, a failure rolls them all back (ADR 050)", async () => {
    const { db, sql: client } = handle;
    await db.execute(sql`create table if not exists trip_rows (id int primary key)`);
    const [inserted, counted] = await transactionInOneTrip(db, [
      sql`insert into trip_rows (id) values (${10}), (${11}) returning id`,
      sql`select count(*)::int as n from trip_rows`,
    ]);
    expect([...inserted!].map((r) => r.id)).toEqual([10, 11]);
    expect([...counted!]).toEqual([{ n: 2 }]);

    // The second statement fails (a duplicate key): the first one's row is not kept, and the error is the cause.
    await expect(transactionInOneTrip(db, [sql`insert into trip_rows (id) values (${12})`, sql`insert into trip_rows (id) values (${10})`, sql`select 1`])).rejects.toMatchObject({
      code: "23505",
    });
    expect([...(await executePrepared(db, sql`select id from trip_rows order by id`))].map((r) => r.id)).toEqual([10, 11]);
    // The connection it used is back in the pool and usable (not left in the aborted transaction), and
    // what the first call wrote was committed: another connection sees it.
    expect([...(await client`select 1 as ok`)]).toEqual([{ ok: 1 }]);
    const other = createDb(test.url, { max: 1 });
    try {
      expect([...(await other.sql`select count(*)::int as n from trip_rows`)]).toEqual([{ n: 2 }]);
    } finally {
      await other.close();
    }
  });

  it("runs a callback's statements in one transaction opened with them, committing at its end and rolling back on a throw or a failed statement (ADR 052)", async () => {
    const { db, sql: client } = handle;
    await db.execute(sql`create table if not exists piped_rows (id int primary key)`);
    const txids = await transactionPipelined(db, async (tx) => {
      const [a, b] = await Promise.all([
        executePrepared<{ id: string }>(tx, sql`select txid_current()::text as id`),
        tx.execute<{ id: string }>(sql`select txid_current()::text as id`),
        executePrepared(tx, sql`insert into piped_rows (id) values (${1})`),
      ]);
      await tx.execute(sql`insert into piped_rows (id) values (${2})`);
      return [a[0]!.id, b[0]!.id];
    });
    // One transaction: the same id for both (each statement on its own would have had its own).
    expect(txids[0]).toBe(txids[1]);
    const other = createDb(test.url, { max: 1 });
    try {
      expect([...(await other.sql`select id from piped_rows order by id`)].map((r) => r.id)).toEqual([1, 2]);
      await expect(
        transactionPipelined(db, async (tx) => {
          await executePrepared(tx, sql`insert into piped_rows (id) values (${3})`);
          throw new Error("roll back");
        }),
      ).rejects.toThrow("roll back");
      await expect(transactionPipelined(db, async (tx) => void (await Promise.all([executePrepared(tx, sql`insert into piped_rows (id) values (${4})`), executePrepared(tx, sql`insert into piped_rows (id) values (${1})`)])))).rejects.toMatchObject({ code: "23505" });
      expect([...(await other.sql`select id from piped_rows order by id`)].map((r) => r.id)).toEqual([1, 2]);
      // A failed statement the callback caught still rolls everything back, and says so: Postgres answers
      // the commit of such a transaction with ROLLBACK, not an error, and it must not pass for a commit.
      await expect(
        transactionPipelined(db, async (tx) => {
          await executePrepared(tx, sql`insert into piped_rows (id) values (${5})`);
          await executePrepared(tx, sql`insert into piped_rows (id) values (${1})`).catch(() => {});
          return "done";
        }),
      ).rejects.toThrow(/rolled back/);
      expect([...(await other.sql`select id from piped_rows order by id`)].map((r) => r.id)).toEqual([1, 2]);
      // The pool's connection is not left inside a transaction.
      expect([...(await client`select txid_current_if_assigned() is null as idle`)]).toEqual([{ idle: true }]);
    } finally {
      await other.close();
    }
  });
});
