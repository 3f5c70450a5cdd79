import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allApps, ensureTools, freePort, startPostgres, startStack, type InstanceName, type Server } from "@cutroom/devstack";

export interface ChaosCluster {
  /** Both gateways' base URLs. */
  gateways: string[];
  databaseUrl: string;
  dir: string;
  /** Kills a process as a crash would: an app instance (`job-service`, `gateway-2`, …), `nats-<1..3>` or `postgres` (stopped). */
  kill: (target: string, signal?: NodeJS.Signals) => Promise<void>;
  /** Starts it again, on its ports and data, and waits until it is ready. */
  restart: (target: string) => Promise<void>;
  stop: () => Promise<void>;
}

/** The timings a deployment would set longer; short here so that a run takes minutes. Stated in docs/RELIABILITY.md. */
export const chaosTimings = {
  // A worker that died mid-job gives its message back after this.
  JOB_ACK_WAIT_MS: "4000",
  JOB_LEASE_MS: "8000",
  RECONCILE_INTERVAL_MS: "1000",
  REDISPATCH_AFTER_MS: "8000",
  ORPHAN_RESERVATION_GRACE_MS: "10000",
};

/**
 * The product as a cluster on loopback: a Postgres of its own (a fault stops it), a 3-node JetStream
 * cluster (R3 streams), two gateways and two of every service and worker. Nothing restarts on its
 * own: the run kills and restarts each process itself, so that what it measures is the product's
 * healing, not a supervisor's.
 */
export async function startChaosCluster(opts: { parentDir?: string; keep?: boolean; log?: (line: string) => void } = {}): Promise<ChaosCluster> {
  const dir = mkdtempSync(join(opts.parentDir ?? tmpdir(), "chaos-"));
  // Postgres runs as its own user when we are root: it must be able to reach its data dir in here.
  chmodSync(dir, 0o755);
  const { pgBin } = ensureTools(opts.log);
  const pgPort = await freePort();
  const startPg = () => startPostgres({ pgBin, dataDir: join(dir, "pg"), port: pgPort, database: "cutroom", logFile: join(dir, "logs", "postgres.log") });
  let pg: Server | undefined = await startPg();
  const two = Object.fromEntries(allApps.filter((a) => a !== "model-emulator").map((a) => [a, 2]));
  const stack = await startStack({
    databaseUrl: pg.url,
    parentDir: dir,
    natsCluster: true,
    instances: two,
    env: {
      ...chaosTimings,
      // One client address for every test user: per-address sign-in limits would count the run as one user.
      AUTH_LOGINS_PER_ADDRESS_PER_MINUTE: "1000",
      AUTH_REGISTRATIONS_PER_ADDRESS_PER_HOUR: "1000",
      // The run's one client follows every job it makes: more live streams than one app user normally holds.
      WS_MAX_CONNECTIONS_PER_USER: "500",
      LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
    },
  }).catch(async (err) => {
    await pg?.stop();
    throw err;
  });
  const nats = stack.natsCluster!;
  const natsNode = (target: string) => {
    const n = /^nats-(\d)$/.exec(target)?.[1];
    return n === undefined ? undefined : Number(n) - 1;
  };

  return {
    gateways: [stack.url, `http://127.0.0.1:${stack.services.env("gateway-2").PORT}`],
    databaseUrl: pg.url,
    dir,
    kill: async (target, signal = "SIGKILL") => {
      const node = natsNode(target);
      if (target === "postgres") {
        await pg?.stop();
        pg = undefined;
      } else if (node !== undefined) await nats.killNode(node, signal);
      else await stack.services.kill(target as InstanceName, signal);
    },
    restart: async (target) => {
      const node = natsNode(target);
      if (target === "postgres") pg = await startPg();
      else if (node !== undefined) await nats.startNode(node);
      else await stack.services.start(target as InstanceName);
    },
    stop: async () => {
      await stack.stop();
      await pg?.stop();
      if (!opts.parentDir && !opts.keep && !process.env.CUTROOM_KEEP_TEST_DATA) rmSync(dir, { recursive: true, force: true });
    },
  };
}
