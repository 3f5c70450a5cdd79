import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startServices, type AppName, type ServiceSet } from "@cutroom/devstack";

const root = join(import.meta.dirname, "..", "..", "..");

/**
 * Runs the given services as their own processes, from their src/server.ts as in production, on
 * this test file's database and nats-server. storage-service keeps its bytes in a temp folder (fs
 * driver) and serves its signed URLs on a free port. Logs are in `<dir>/logs/<app>.log`.
 */
export async function startTestServices(opts: {
  databaseUrl: string;
  natsUrl: string;
  apps: readonly AppName[];
  /** Extra variables for every service, e.g. JOB_LEASE_MS. */
  env?: Record<string, string>;
}): Promise<{ dir: string; storageDir: string; services: ServiceSet; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "services-"));
  const storageDir = join(dir, "storage");
  const storageUrl = `http://127.0.0.1:${await freePort()}`;
  const services = await startServices({
    root,
    apps: opts.apps,
    logDir: join(dir, "logs"),
    env: {
      DATABASE_URL: opts.databaseUrl,
      NATS_URL: opts.natsUrl,
      STORAGE_DRIVER: "fs",
      STORAGE_DIR: storageDir,
      STORAGE_PORT: new URL(storageUrl).port,
      STORAGE_INTERNAL_URL: storageUrl,
      // No gateway in front: signed URLs point at storage's own data plane.
      STORAGE_PUBLIC_URL: `${storageUrl}/storage`,
      ...opts.env,
    },
  });
  return {
    dir,
    storageDir,
    services,
    stop: async () => {
      await services.stopAll();
      if (!process.env.CUTROOM_KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
    },
  };
}
