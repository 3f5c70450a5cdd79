import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import type { NatsLogin } from "./nats-auth.ts";
import { bundleApps } from "./bundle.ts";
import { stopChild } from "./servers.ts";
import { RestartBudget, exitReason, giveUpMessage, type SuperviseOptions } from "./supervise.ts";
import { freePort } from "./wait.ts";

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

/** One process of an app: instance 1 is named after its app (`job-service`), the next ones `job-service-2`, …. */
export type InstanceName = AppName | `${AppName}-${number}`;

/** The port variables each app listens on: a second instance gets free ports of its own for those the stack sets. */
const listenPorts: Partial<Record<AppName, string[]>> = {
  gateway: ["PORT", "METRICS_PORT"],
  "storage-service": ["STORAGE_PORT", "METRICS_PORT"],
  "auth-service": ["METRICS_PORT"],
  "billing-service": ["METRICS_PORT"],
  "job-service": ["METRICS_PORT"],
  "worker-image": ["METRICS_PORT"],
  "worker-video": ["METRICS_PORT"],
  "worker-audio": ["METRICS_PORT"],
  "model-emulator": ["MODEL_EMULATOR_PORT"],
};

/** Whether an instance listens on a free port of its own for `variable` rather than the stack's: every app serves metrics, the gateway's first instance on METRICS_PORT itself. */
const ownPort = (app: AppName, i: number, variable: string) => i > 1 || (variable === "METRICS_PORT" && app !== "gateway");

const startTimeoutMs = 60_000;
/**
 * Node flags for every app process, from CUTROOM_NODE_ARGS (space-separated): a profile of each
 * (`--cpu-prof --cpu-prof-dir=/tmp/prof`) is how docs/PERFORMANCE.md's figures were taken apart.
 * Node refuses such flags in NODE_OPTIONS.
 */
const nodeArgs = (process.env.CUTROOM_NODE_ARGS ?? "").split(" ").filter(Boolean);

export interface ServiceSet {
  /** The current process of each instance (a restart replaces it). */
  children: Map<InstanceName, ChildProcess>;
  /** Every instance, in start order. */
  instances: InstanceName[];
  /** Starts an instance (stopping its current process first), with `extraEnv` until its next start; resolves once it is ready. */
  start: (name: InstanceName, extraEnv?: Record<string, string>) => Promise<ChildProcess>;
  /** Stops an instance as asked: supervision never restarts it. */
  stop: (name: InstanceName, signal?: NodeJS.Signals) => Promise<void>;
  /** Kills an instance as a crash would (SIGKILL by default) and waits for it to exit: under supervision it comes back. */
  kill: (name: InstanceName, signal?: NodeJS.Signals) => Promise<void>;
  /** The instance's process once it is ready: after a kill under supervision, the restarted one; rejects if supervision gives up. */
  ready: (name: InstanceName) => Promise<ChildProcess>;
  /** The variables an instance gets besides the shared ones: its own ports (e.g. `env("gateway-2").PORT`). */
  env: (name: InstanceName) => Record<string, string>;
  logFile: (name: InstanceName) => string;
  stopAll: () => Promise<void>;
}

interface Instance {
  name: InstanceName;
  app: AppName;
  ownEnv: Record<string, string>;
  extraEnv: Record<string, string>;
  log: WriteStream;
  logFile: string;
  child?: ChildProcess;
  /** False once a stop was asked for: an exit then is never restarted. */
  wanted: boolean;
  budget: RestartBudget;
  restartTimer?: NodeJS.Timeout;
  ready: Promise<ChildProcess>;
  /** Settles `ready` while supervision brings the instance back. */
  pending?: { resolve: (c: ChildProcess) => void; reject: (e: Error) => void };
}

/**
 * Runs each app as its own process (its source bundled into one file, see bundleApps), as in production.
 * A service counts as started when it announces `ready` over the IPC channel. Output goes to `logDir/<instance>.log`,
 * and to `echo` when given (npm start prints it). With `supervise`, an instance that exits without
 * being asked to is restarted with backoff; the first start still fails fast.
 */
export async function startServices(opts: {
  root: string;
  env: Record<string, string>;
  apps?: readonly AppName[];
  /** Processes per app (default 1), e.g. `{ "job-service": 2 }`. */
  instances?: Partial<Record<AppName, number>>;
  /** Variables of one instance alone, over the ports picked for it (e.g. a storage replica's STORAGE_PORT that the others must know). */
  instanceEnv?: Partial<Record<InstanceName, Record<string, string>>>;
  logDir: string;
  echo?: (name: InstanceName, line: string) => void;
  /** Each app connects to NATS as its own user (NATS_USER/NATS_PASSWORD); absent: without auth. */
  natsLogins?: Partial<Record<AppName, NatsLogin>>;
  /** Restart instances that die on their own (true: the default policy). Off by default: tests kill on purpose. */
  supervise?: boolean | SuperviseOptions;
}): Promise<ServiceSet> {
  mkdirSync(opts.logDir, { recursive: true });
  const supervise = opts.supervise === true ? {} : opts.supervise || undefined;
  const instances = new Map<InstanceName, Instance>();
  const children = new Map<InstanceName, ChildProcess>();

  const apps = opts.apps ?? allApps;
  const bundles = await bundleApps(opts.root, apps);
  for (const app of apps) {
    for (let i = 1; i <= (opts.instances?.[app] ?? 1); i++) {
      const name: InstanceName = i === 1 ? app : `${app}-${i}`;
      const ownEnv: Record<string, string> = {};
      const login = opts.natsLogins?.[app];
      if (login) Object.assign(ownEnv, { NATS_USER: login.user, NATS_PASSWORD: login.password });
      for (const v of listenPorts[app] ?? []) if (opts.env[v] && ownPort(app, i, v)) ownEnv[v] = String(await freePort());
      Object.assign(ownEnv, opts.instanceEnv?.[name]);
      const logFile = join(opts.logDir, `${name}.log`);
      const log = createWriteStream(logFile, { flags: "a" });
      instances.set(name, { name, app, ownEnv, extraEnv: {}, log, logFile, wanted: false, budget: new RestartBudget(supervise), ready: Promise.reject(new Error(`${name} was never started`)) });
      instances.get(name)!.ready.catch(() => {});
    }
  }
  const get = (name: InstanceName) => {
    const inst = instances.get(name);
    if (!inst) throw new Error(`no instance ${name} in this stack (instances: ${[...instances.keys()].join(", ")})`);
    return inst;
  };

  /** Spawns the instance's process; resolves once it announces ready, rejects if it exits or times out first. */
  const spawnInstance = (inst: Instance, restartOnEarlyExit: boolean): Promise<ChildProcess> => {
    const child = spawn(process.execPath, ["--enable-source-maps", ...nodeArgs, bundles[inst.app]!], {
      cwd: join(opts.root, "apps", inst.app),
      env: { ...process.env, ...opts.env, ...inst.ownEnv, ...inst.extraEnv },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    inst.child = child;
    children.set(inst.name, child);
    inst.budget.started();
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        inst.log.write(line + "\n");
        opts.echo?.(inst.name, line);
      });
    }
    let isReady = false;
    const ready = new Promise<ChildProcess>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`timed out waiting for ${inst.name} to be ready (see ${inst.logFile})`));
        // Under supervision a hung start is a death like any other.
        if (restartOnEarlyExit) child.kill("SIGKILL");
      }, startTimeoutMs);
      child.on("message", (m) => {
        if ((m as { type?: string })?.type !== "ready") return;
        clearTimeout(timer);
        isReady = true;
        resolve(child);
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${inst.name} exited during start (${exitReason(code, signal)}; see ${inst.logFile})`));
      });
    });
    child.once("exit", (code, signal) => {
      if (inst.child === child && (isReady || restartOnEarlyExit)) onUnaskedExit(inst, exitReason(code, signal));
    });
    return ready;
  };

  const onUnaskedExit = (inst: Instance, reason: string) => {
    if (!supervise || !inst.wanted) return;
    const delay = inst.budget.afterExit();
    if (delay === undefined) {
      inst.wanted = false;
      const message = giveUpMessage(inst.name, inst.budget.count + 1, reason, inst.logFile, supervise);
      inst.pending?.reject(new Error(message));
      inst.pending = undefined;
      inst.ready = Promise.reject(new Error(message));
      inst.ready.catch(() => {});
      supervise.onGiveUp?.(inst.name, message);
      return;
    }
    if (!inst.pending) {
      inst.ready = new Promise<ChildProcess>((resolve, reject) => (inst.pending = { resolve, reject }));
      inst.ready.catch(() => {});
    }
    supervise.onRestart?.(inst.name, reason, delay);
    inst.restartTimer = setTimeout(() => {
      inst.restartTimer = undefined;
      if (!inst.wanted) return;
      spawnInstance(inst, true).then(
        (child) => {
          inst.pending?.resolve(child);
          inst.pending = undefined;
        },
        // Its exit handler decides: another restart, or giving up.
        () => {},
      );
    }, delay);
  };

  const stop = async (name: InstanceName, signal: NodeJS.Signals = "SIGTERM") => {
    const inst = get(name);
    inst.wanted = false;
    clearTimeout(inst.restartTimer);
    inst.pending?.reject(new Error(`${name} was stopped`));
    inst.pending = undefined;
    if (inst.child) await stopChild(inst.child, signal);
  };

  const start = async (name: InstanceName, extraEnv: Record<string, string> = {}) => {
    const inst = get(name);
    if (inst.child && inst.child.exitCode === null && inst.child.signalCode === null) await stop(name);
    clearTimeout(inst.restartTimer);
    const pending = inst.pending;
    Object.assign(inst, { extraEnv, wanted: true, budget: new RestartBudget(supervise), pending: undefined });
    inst.ready = spawnInstance(inst, false);
    inst.ready.then(pending?.resolve, pending?.reject).catch(() => {});
    return inst.ready;
  };

  const set: ServiceSet = {
    children,
    instances: [...instances.keys()],
    start,
    stop,
    kill: async (name, signal = "SIGKILL") => {
      const child = get(name).child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      await exited;
    },
    ready: (name) => get(name).ready,
    env: (name) => ({ ...get(name).ownEnv }),
    logFile: (name) => get(name).logFile,
    stopAll: async () => {
      await Promise.all([...instances.keys()].map((name) => stop(name)));
      for (const inst of instances.values()) inst.log.end();
    },
  };
  const names = [...instances.values()];
  try {
    // Services first (in parallel), then the gateways, which fetch the auth key at start.
    await Promise.all(names.filter((i) => i.app !== "gateway").map((i) => start(i.name)));
    for (const i of names.filter((i) => i.app === "gateway")) await start(i.name);
  } catch (err) {
    await set.stopAll();
    throw err;
  }
  return set;
}
