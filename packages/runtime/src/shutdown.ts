import type { Logger } from "./logger.ts";
import type { NatsConnection } from "./nats.ts";

/**
 * On SIGTERM or SIGINT: run the closers in order (stop taking work, finish what is in
 * flight, close connections), then exit. A second signal, or the deadline, exits at once.
 */
export function onShutdown(log: Logger, closers: Array<() => Promise<unknown>>, deadlineMs = 15_000): void {
  let closing = false;
  const close = async (signal: string) => {
    if (closing) return hardExit();
    closing = true;
    log.info({ signal }, "shutting down");
    const timer = setTimeout(() => {
      log.error("shutdown deadline passed, exiting");
      hardExit();
    }, deadlineMs);
    timer.unref();
    for (const closer of closers) {
      try {
        await closer();
      } catch (err) {
        log.error({ err }, "error while shutting down");
      }
    }
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void close("SIGTERM"));
  process.on("SIGINT", () => void close("SIGINT"));
}

/**
 * Ends the process now. Not process.exit: it waits for native work in flight (a sharp encode
 * kept a worker alive 40 s past its deadline), SIGKILL does not.
 */
function hardExit(): never {
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable");
}

/**
 * Says the process now serves: a `ready` log line, and a message to the parent process when it
 * started us with an IPC channel (the devstack waits for that, whatever the log level).
 */
export function signalReady(log: Logger, fields: Record<string, unknown> = {}): void {
  log.info(fields, "ready");
  if (process.send) {
    process.send({ type: "ready", ...fields });
    process.channel?.unref();
  }
}

/** `signalReady` for a process on NATS, once the server has its subscriptions. */
export async function announceReady(log: Logger, nc: NatsConnection, fields: Record<string, unknown> = {}): Promise<void> {
  // The server must have our subscriptions before anyone is told we serve, or early calls meet no responders.
  await nc.flush();
  signalReady(log, fields);
}
