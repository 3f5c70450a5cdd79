import { readdirSync } from "node:fs";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrationsFolder, runMigrations } from "./index.ts";
import { createTestDatabase } from "@cutroom/devstack";

describe("migrations", () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase("migrate");
  });
  afterAll(async () => db.drop());

  it("apply to an empty database, creating one schema per service", async () => {
    await runMigrations(db.url);
    const sql = postgres(db.url, { max: 1 });
    const schemas = await sql`select schema_name from information_schema.schemata where schema_name in ('auth','billing','jobs','storage') order by 1`;
    const tables = await sql`select table_schema || '.' || table_name as t from information_schema.tables where table_schema in ('auth','billing','jobs','storage') order by 1`;
    await sql.end();
    expect(schemas.map((r) => r.schema_name)).toEqual(["auth", "billing", "jobs", "storage"]);
    expect(tables.map((r) => r.t)).toEqual(expect.arrayContaining(["auth.users", "billing.ledger", "jobs.jobs", "storage.files"]));
  });

  it("apply exactly once when several services migrate a fresh database at once, and re-apply as a no-op", async () => {
    const fresh = await createTestDatabase("migrace");
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} });
    try {
      await Promise.all([runMigrations(fresh.url), runMigrations(fresh.url), runMigrations(fresh.url)]);
      const files = readdirSync(migrationsFolder).filter((f) => f.endsWith(".sql"));
      const applied = async () => (await sql`select count(*)::int as n from public.__drizzle_migrations`)[0]!.n;
      expect(await applied()).toBe(files.length);
      await runMigrations(fresh.url);
      expect(await applied()).toBe(files.length);
    } finally {
      await sql.end();
      await fresh.drop();
    }
  });
});
