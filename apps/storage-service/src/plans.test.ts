import { randomUUID } from "node:crypto";
import { clientOf, createDb } from "@cutroom/db";
import { createMigratedDb } from "@cutroom/testing";
import { afterAll, beforeAll, expect, it } from "vitest";
import { getReadyFiles, storageDbOptions } from "./files.ts";
import { staleTickets } from "./uploads.ts";

// ADR 055: storage.files gains a row per job output, from empty on a new install and in every benchmark.
const base = await createMigratedDb("plans");
const owner = randomUUID();
const id = randomUUID();
afterAll(() => base.close());

beforeAll(async () => {
  await clientOf(base.db)`insert into storage.files (id, owner_id, folder, filename, content_type, storage_key, status) values (${id}, ${owner}, 'upload', 'a.png', 'image/png', ${`${owner}/${id}`}, 'ready')`;
  await clientOf(base.db)`analyze storage.files`;
});

/** The plan a lookup of a job's input files runs with, on storage-service's own pool, once the table has grown since it was prepared. */
async function lookupPlanAfterGrowth(): Promise<string> {
  const { db, sql, close } = createDb(base.url, { ...storageDbOptions, max: 1 });
  try {
    // Prepared and run while the table holds one row: Postgres makes its generic plan after five runs.
    for (let i = 0; i < 8; i++) expect(await getReadyFiles(db, owner, [id])).toHaveLength(1);
    await clientOf(base.db)`
      insert into storage.files (id, owner_id, folder, filename, content_type, storage_key, status)
      select gen_random_uuid(), gen_random_uuid(), 'output', 'p.webp', 'image/webp', 'k' || n, 'ready' from generate_series(1, 5000) n`;
    // The one connection of the pool holds the statement; explain it there as it would run now.
    const [stmt] = await sql<{ name: string }[]>`select name from pg_prepared_statements where statement like '%from storage.files where id = any%' and statement not like '%pg_prepared_statements%'`;
    expect(stmt).toBeDefined();
    const plan = await sql.unsafe(`explain execute "${stmt!.name}"('{${id}}', '${owner}')`);
    return plan.map((r) => Object.values(r)[0]).join("\n");
  } finally {
    await close();
    await clientOf(base.db)`delete from storage.files where id <> ${id}`;
  }
}

it("finds a job's input files by key after storage.files grew from nearly empty, instead of reading the whole table with a plan made when it was small", async () => {
  const plan = await lookupPlanAfterGrowth();
  expect(plan).toMatch(/Index Scan/);
  expect(plan).not.toMatch(/Seq Scan/);
});

it("sweeps the signed-URL tickets never confirmed from the few inputs still waiting, not from every file stored", async () => {
  const { db, sql, close } = createDb(base.url, { ...storageDbOptions, max: 1 });
  try {
    await clientOf(base.db)`
      insert into storage.files (id, owner_id, folder, filename, content_type, storage_key, status, created_at)
      select gen_random_uuid(), gen_random_uuid(), 'input', 'a.png', 'image/png', 'r' || n, 'ready', now() - interval '2 days' from generate_series(1, 3000) n`;
    const stale = randomUUID();
    await clientOf(base.db)`
      insert into storage.files (id, owner_id, folder, filename, content_type, storage_key, status, created_at)
      values (${stale}, ${owner}, 'input', 'b.png', 'image/png', ${`${owner}/${stale}`}, 'pending', now() - interval '2 days')`;
    await clientOf(base.db)`analyze storage.files`;
    const before = new Date(Date.now() - 24 * 60 * 60 * 1000);
    expect((await staleTickets(db, before, 100)).map((f) => f.id)).toEqual([stale]);
    // As storage-service's pool plans it (each statement with its values, ADR 055).
    const { sql: text, params } = staleTickets(db, before, 100).toSQL();
    const plan = (await sql.unsafe(`explain ${text}`, params as never[])).map((r) => Object.values(r)[0]).join("\n");
    expect(plan).toMatch(/files_unconfirmed_idx/);
    expect(plan).not.toMatch(/Seq Scan on files/);
  } finally {
    await close();
    await clientOf(base.db)`delete from storage.files where id <> ${id}`;
  }
});
