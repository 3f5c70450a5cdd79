import { createDb, runMigrations, type DbHandle } from "@cutroom/db";
import { createLogger } from "@cutroom/runtime";
import { createTestDatabase } from "@cutroom/devstack";

export { createTestDatabase, freePort, startStack } from "@cutroom/devstack";
export { startTestNats } from "./nats.ts";

/** A migrated, empty database of this test file's own. */
export async function createMigratedDb(prefix = "t"): Promise<DbHandle & { url: string }> {
  const tdb = await createTestDatabase(prefix);
  await runMigrations(tdb.url);
  const handle = createDb(tdb.url, { max: 5 });
  return {
    ...handle,
    url: tdb.url,
    close: async () => {
      await handle.close();
      await tdb.drop();
    },
  };
}

export const silentLogger = () => createLogger("test", process.env.TEST_LOG_LEVEL ?? "silent");
