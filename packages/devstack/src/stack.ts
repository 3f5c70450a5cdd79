import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { modelStackEnv, newWebhookSecret } from "./models-env.ts";
import { createNatsLogins, natsConnectOptions, type NatsLoginName, type NatsLogins } from "./nats-auth.ts";
import { startNats, startNatsCluster, type NatsCluster } from "./servers.ts";
import { allApps, startServices, type AppName, type ServiceSet } from "./services.ts";
import type { SuperviseOptions } from "./supervise.ts";
import { freePort } from "./wait.ts";

const root = join(import.meta.dirname, "..", "..", "..");

export interface Stack {
  url: string;
  databaseUrl: string;
  natsUrl: string;
  /** Every NATS user's login when the stack runs its own nats-server (always with auth); absent on a given `natsUrl`. */
  natsLogins?: NatsLogins;
  /** nats.js `connect()` options as one of the stack's NATS users, the admin by default. */
  natsOptions: (as?: NatsLoginName) => { servers: string; user?: string; pass?: string; inboxPrefix?: string };
  dir: string;
  /** The model emulator's base URL, when the stack runs it (its Replicate API is under /v1). */
  emulatorUrl?: string;
  /** storage-service's fs driver folder. */
  storageDir: string;
  services: ServiceSet;
  /** The stack's own 3-node NATS cluster, with `natsCluster: true`: stop, kill and start its nodes. */
  natsCluster?: NatsCluster;
  stop: () => Promise<void>;
}

/**
 * The whole product (or the given `apps`) as separate processes, as `npm start` runs it, on the
 * given database, on `natsUrl` or a nats-server of its own (with a NATS user per app, as
 * `npm start`), and a storage folder of its own, on free ports. Used by end-to-end tests,
 * service-level tests and benchmarks.
 */
export async function startStack(opts: {
  databaseUrl: string;
  /** An already running nats-server; the stack starts (and stops) its own when absent. */
  natsUrl?: string;
  apps?: readonly AppName[];
  env?: Record<string, string>;
  parentDir?: string;
  /** Processes per app, e.g. `{ "job-service": 2 }` (see startServices). */
  instances?: Partial<Record<AppName, number>>;
  /** Restart apps that die on their own. Off by default: most tests that kill an app restart it themselves. */
  supervise?: boolean | SuperviseOptions;
  /** A 3-node JetStream cluster of its own instead of one nats-server (NATS_STREAM_REPLICAS=3). */
  natsCluster?: boolean;
}): Promise<Stack> {
  const dir = mkdtempSync(join(opts.parentDir ?? tmpdir(), "stack-"));
  const storageDir = join(dir, "storage");
  const natsCluster = opts.natsCluster && !opts.natsUrl ? await startNatsCluster({ dir: join(dir, "nats"), logins: createNatsLogins() }) : undefined;
  const nats = opts.natsUrl ? undefined : (natsCluster ?? (await startNats({ storeDir: join(dir, "nats"), port: await freePort(), logins: createNatsLogins(), logFile: join(dir, "logs", "nats-server.log") })));
  const natsUrl = opts.natsUrl ?? nats!.url;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // Every storage replica's port is known up front: the others reach storage by the list of them all.
  const storagePorts: number[] = [];
  for (let i = 0; i < (opts.instances?.["storage-service"] ?? 1); i++) storagePorts.push(await freePort());
  const storagePort = storagePorts[0]!;
  const storageInternalUrl = `http://127.0.0.1:${storagePort}`;
  // Without a gateway in front, signed URLs point at storage's own data plane.
  const apps = opts.apps ?? allApps;
  const hasGateway = apps.includes("gateway");
  // The emulator serves hosted models when it is among the apps; without it no provider serves (a token must be given in `env`).
  const emulatorPort = apps.includes("model-emulator") ? await freePort() : undefined;
  const emulatorUrl = emulatorPort ? `http://127.0.0.1:${emulatorPort}` : undefined;
  const services = await startServices({
    root,
    apps: opts.apps,
    instances: opts.instances,
    instanceEnv: Object.fromEntries(storagePorts.slice(1).map((p, i) => [`storage-service-${i + 2}`, { STORAGE_PORT: String(p) }])),
    supervise: opts.supervise,
    logDir: join(dir, "logs"),
    natsLogins: nats?.logins,
    env: {
      PORT: String(port),
      HOST: "127.0.0.1",
      DATABASE_URL: opts.databaseUrl,
      NATS_URL: natsUrl,
      STORAGE_DRIVER: "fs",
      STORAGE_DIR: storageDir,
      STORAGE_PORT: String(storagePort),
      STORAGE_INTERNAL_URL: storagePorts.map((p) => `http://127.0.0.1:${p}`).join(","),
      STORAGE_PUBLIC_URL: hasGateway ? `${url}/storage` : `${storageInternalUrl}/storage`,
      STORAGE_URL_SECRET: randomBytes(32).toString("hex"),
      LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
      ...(natsCluster ? { NATS_STREAM_REPLICAS: String(natsCluster.replicas) } : {}),
      ...modelStackEnv({ emulatorUrl, webhookBaseUrl: hasGateway ? url : undefined, webhookSecret: newWebhookSecret() }),
      ...(emulatorPort ? { MODEL_EMULATOR_PORT: String(emulatorPort), MODEL_EMULATOR_HOST: "127.0.0.1", MODEL_EMULATOR_PUBLIC_URL: emulatorUrl!, MODEL_EMULATOR_DIR: join(dir, "model-emulator") } : {}),
      // No job-service, no job events stream: the gateway need not wait for one (10 s by default).
      ...(apps.includes("job-service") ? {} : { JOB_EVENTS_WAIT_MS: "0" }),
      ...opts.env,
    },
  }).catch(async (err) => {
    await nats?.stop();
    throw new Error(`${(err as Error).message}\nlogs: ${join(dir, "logs")}`);
  });
  return {
    url,
    databaseUrl: opts.databaseUrl,
    natsUrl,
    natsLogins: nats?.logins,
    natsOptions: (as) => natsConnectOptions(natsUrl, nats?.logins, as),
    dir,
    emulatorUrl,
    storageDir,
    services,
    natsCluster,
    stop: async () => {
      await services.stopAll();
      await nats?.stop();
      // Under a parent dir (npm test's run dir), logs stay for a failed run to show; it removes them otherwise.
      if (!opts.parentDir && !process.env.CUTROOM_KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
    },
  };
}
