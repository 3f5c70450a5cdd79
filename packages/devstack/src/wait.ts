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

/** Asks the OS for a free TCP port. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.once("error", reject);
  });
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
