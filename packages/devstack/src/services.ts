import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import type { NatsLogin } from "./nats-auth.ts";
import { stopChild } from "./servers.ts";
import { GiveUp, waitFor } from "./wait.ts";

export const allApps = [
  "auth-service",
  "billing-service",
  "storage-service",
  "job-service",
  "worker-image",
  "worker-video",
  "worker-audio",
  // Replicate's stand-in (apps/model-emulator): no NATS user, no Cutroom secret.
  "model-emulator",
  "gateway",
] as const;
export type AppName = (typeof allApps)[number];

export interface ServiceSet {
  children: Map<AppName, ChildProcess>;
  start: (app: AppName, extraEnv?: Record<string, string>) => Promise<ChildProcess>;
  stop: (app: AppName, signal?: NodeJS.Signals) => Promise<void>;
  stopAll: () => Promise<void>;
}

/**
 * Runs each app as its own process (`node --import tsx src/server.ts`), as in production.
 * A service counts as started when it announces `ready` over the IPC channel. Output goes to `logDir/<app>.log`,
 * and to `echo` when given (npm start prints it).
 */
export async function startServices(opts: {
  root: string;
  env: Record<string, string>;
  apps?: readonly AppName[];
  logDir: string;
  echo?: (app: AppName, line: string) => void;
  /** Each app connects to NATS as its own user (NATS_USER/NATS_PASSWORD); absent: without auth. */
  natsLogins?: Partial<Record<AppName, NatsLogin>>;
}): Promise<ServiceSet> {
  mkdirSync(opts.logDir, { recursive: true });
  const children = new Map<AppName, ChildProcess>();
  const logs = new Map<AppName, WriteStream>();

  const natsEnv = (app: AppName): Record<string, string> => {
    const login = opts.natsLogins?.[app];
    return login ? { NATS_USER: login.user, NATS_PASSWORD: login.password } : {};
  };

  const start = async (app: AppName, extraEnv: Record<string, string> = {}) => {
    const cwd = join(opts.root, "apps", app);
    const child = spawn(process.execPath, ["--import", "tsx", "src/server.ts"], {
      cwd,
      env: { ...process.env, ...opts.env, ...natsEnv(app), ...extraEnv },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    children.set(app, child);
    let log = logs.get(app);
    if (!log) logs.set(app, (log = createWriteStream(join(opts.logDir, `${app}.log`), { flags: "a" })));
    let ready = false;
    let exited = false;
    child.once("exit", () => (exited = true));
    child.on("message", (m) => {
      if ((m as { type?: string })?.type === "ready") ready = true;
    });
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        log!.write(line + "\n");
        opts.echo?.(app, line);
      });
    }
    await waitFor(`${app} to be ready (see ${join(opts.logDir, `${app}.log`)})`, async () => {
      if (exited) throw new GiveUp(`${app} exited during start`);
      return ready;
    }, 60_000, 50);
    return child;
  };

  const apps = opts.apps ?? allApps;
  const set: ServiceSet = {
    children,
    start,
    stop: async (app, signal = "SIGTERM") => {
      const c = children.get(app);
      if (c) await stopChild(c, signal);
    },
    stopAll: async () => {
      await Promise.all([...children.values()].map((c) => stopChild(c)));
      for (const l of logs.values()) l.end();
    },
  };
  try {
    // Services first (in parallel), then the gateway, which fetches the auth key at start.
    await Promise.all(apps.filter((a) => a !== "gateway").map((a) => start(a)));
    if (apps.includes("gateway")) await start("gateway");
  } catch (err) {
    await set.stopAll();
    throw err;
  }
  return set;
}
