import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findPgBin, freePort, startPostgres, type Server } from "@cutroom/devstack";
import { afterAll, expect, it } from "vitest";
import { createDb, sqlTag as sql } from "./index.ts";

// A Postgres of this file's own: the test stops it, which the shared one of npm test must never be.
const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "pg-restart-"));
chmodSync(dir, 0o755);
let pg: Server | undefined;
afterAll(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it("serves again within seconds of Postgres coming back, however many connects it refused meanwhile", { timeout: 60_000 }, async () => {
  const port = await freePort();
  const start = () => startPostgres({ pgBin: findPgBin()!, dataDir: join(dir, "pg"), port, database: "cutroom", fast: true });
  pg = await start();
  const { db, close } = createDb(pg.url);
  try {
    await db.execute(sql`select 1`);
    await pg.stop();
    // Clients keep asking while it is down, as the services' requests do: each refused connect lengthens the wait.
    const until = Date.now() + 6000;
    const asking = async () => {
      while (Date.now() < until) await db.execute(sql`select 1`).catch(() => {});
    };
    const askers = Promise.all(Array.from({ length: 10 }, asking));
    await new Promise((r) => setTimeout(r, until - Date.now()));
    pg = await start();
    const back = Date.now();
    await db.execute(sql`select 1`);
    expect(Date.now() - back).toBeLessThan(3000);
    await askers;
  } finally {
    await close();
  }
});
