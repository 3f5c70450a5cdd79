import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNats, startServices, type AppName, type ServiceSet } from "@cutroom/devstack";
import { createTestDatabase } from "@cutroom/testing";

const root = join(import.meta.dirname, "..", "..", "..");

export interface Stack {
  url: string;
  databaseUrl: string;
  natsUrl: string;
  services: ServiceSet;
  stop: () => Promise<void>;
}

export const ADMIN_EMAIL = "admin@e2e.cutroom.test";

/**
 * The whole product as separate processes, as `npm start` runs it, on a database and a
 * nats-server of this test file's own.
 */
export async function startStack(opts: { apps?: readonly AppName[]; env?: Record<string, string> } = {}): Promise<Stack> {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "e2e-"));
  const db = await createTestDatabase("e2e");
  const nats = await startNats({ storeDir: join(dir, "nats"), port: await freePort() });
  const [port, storagePort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${port}`;
  const services = await startServices({
    root,
    apps: opts.apps,
    logDir: join(dir, "logs"),
    env: {
      PORT: String(port),
      HOST: "127.0.0.1",
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      STORAGE_DRIVER: "fs",
      STORAGE_DIR: join(dir, "storage"),
      STORAGE_PORT: String(storagePort),
      STORAGE_INTERNAL_URL: `http://127.0.0.1:${storagePort}`,
      STORAGE_PUBLIC_URL: `${url}/storage`,
      BOOTSTRAP_ADMIN_EMAILS: ADMIN_EMAIL,
      LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
      ...opts.env,
    },
  }).catch(async (err) => {
    await nats.stop();
    await db.drop();
    throw new Error(`${(err as Error).message}\nlogs: ${join(dir, "logs")}`);
  });
  return {
    url,
    databaseUrl: db.url,
    natsUrl: nats.url,
    services,
    stop: async () => {
      await services.stopAll();
      await nats.stop();
      await db.drop();
      if (!process.env.CUTROOM_KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
    },
  };
}
