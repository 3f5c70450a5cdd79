import { readFileSync } from "node:fs";
import { connect } from "node:net";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Thrown by a `waitFor` check when waiting longer cannot help (the process exited): ends the wait at once. */
export class GiveUp extends Error {}

/** Polls `check` until it returns truthy or `timeoutMs` passes; a check that throws GiveUp ends it at once. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      if (err instanceof GiveUp) throw new Error(`gave up waiting for ${what}: ${err.message}`);
      lastError = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`);
}

export function portOpen(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

// Ports handed out by this process, so two servers of one run never get the same one.
const handedOut = new Set<number>();

/**
 * The ports at or above 10,000 that fetch refuses to reach ("bad port", the Fetch standard's port
 * blocking list): a stack given one answered every client's request with `TypeError: fetch failed`.
 */
export const FETCH_BLOCKED_PORTS: ReadonlySet<number> = new Set([10080]);

/**
 * A free TCP port below the kernel's ephemeral range: a port the OS picks (listen on 0) comes from
 * that range, where an outgoing connection may take it before our server binds it (seen as a
 * flaky EADDRINUSE at start). Checked by binding it.
 */
export async function freePort(): Promise<number> {
  const [low, high] = portRange();
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port) || FETCH_BLOCKED_PORTS.has(port) || !(await portFree(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port found between ${low} and ${high}`);
}

/** The ports freePort draws from, [low, high): above 10000, below the kernel's ephemeral ones, in this vitest worker's slice. */
export const portRange = (): [number, number] => portSlice(10_000, ephemeralLow() - 1);

/**
 * Test files run side by side in vitest workers (processes), each with its own `handedOut`: a port
 * one worker picked but had not bound yet looked free to another (seen as EADDRINUSE). Each worker
 * (VITEST_POOL_ID 1..8) takes its own slice of the range; other processes take the whole range.
 */
function portSlice(low: number, high: number): [number, number] {
  const id = Number(process.env.VITEST_POOL_ID);
  if (!Number.isInteger(id) || id < 1) return [low, high];
  const slices = 8;
  const size = Math.floor((high - low) / slices);
  const i = (id - 1) % slices;
  return [low + i * size, low + (i + 1) * size];
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** True when nothing listens on `port` at `host`: we could bind it ourselves. */
export async function portFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * Fails, naming the port and the variable that moves it, when any of `ports` is taken:
 * a second stack must not quietly join the first one's servers.
 */
export async function assertPortsFree(ports: Record<string, number>, host = "127.0.0.1"): Promise<void> {
  const hosts = [...new Set(["127.0.0.1", host])];
  for (const [name, port] of Object.entries(ports)) {
    for (const h of hosts) {
      if (!(await portFree(port, h))) {
        const hint = name === "PORT" ? "set PORT to a free port" : `set ${name}, or PORT to move the whole stack (e.g. PORT=9000 npm start)`;
        throw new Error(`port ${port} (${name}) is in use on ${h}: another program or Cutroom stack listens there; ${hint}`);
      }
    }
  }
}
