import postgres from "postgres";
import { randomBytes } from "node:crypto";

/**
 * Creates an empty database on the server that `npm test` started (DATABASE_URL),
 * so each test file gets its own. Returns its URL and a drop function.
 */
export async function createTestDatabase(prefix = "t"): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error("DATABASE_URL is not set: run the tests with `npm test`, which starts Postgres");
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const a = postgres(base, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}
