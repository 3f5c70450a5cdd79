import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNats } from "./servers.ts";
import { startServices, type AppName, type ServiceSet } from "./services.ts";
import { freePort } from "./wait.ts";

const root = join(import.meta.dirname, "..", "..", "..");

export interface Stack {
  url: string;
  databaseUrl: string;
  natsUrl: string;
  dir: string;
  services: ServiceSet;
  stop: () => Promise<void>;
}

/**
 * The whole product as separate processes, as `npm start` runs it, on the given database and a
 * nats-server and storage folder of its own, on free ports. Used by end-to-end tests and benchmarks.
 */
export async function startStack(opts: { databaseUrl: string; apps?: readonly AppName[]; env?: Record<string, string>; parentDir?: string }): Promise<Stack> {
  const dir = mkdtempSync(join(opts.parentDir ?? tmpdir(), "stack-"));
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
      DATABASE_URL: opts.databaseUrl,
      NATS_URL: nats.url,
      STORAGE_DRIVER: "fs",
      STORAGE_DIR: join(dir, "storage"),
      STORAGE_PORT: String(storagePort),
      STORAGE_INTERNAL_URL: `http://127.0.0.1:${storagePort}`,
      STORAGE_PUBLIC_URL: `${url}/storage`,
      LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
      ...opts.env,
    },
  }).catch(async (err) => {
    await nats.stop();
    throw new Error(`${(err as Error).message}\nlogs: ${join(dir, "logs")}`);
  });
  return {
    url,
    databaseUrl: opts.databaseUrl,
    natsUrl: nats.url,
    dir,
    services,
    stop: async () => {
      await services.stopAll();
      await nats.stop();
      // Under a parent dir (npm test's run dir), logs stay for a failed run to show; it removes them otherwise.
      if (!opts.parentDir && !process.env.CUTROOM_KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
    },
  };
}
