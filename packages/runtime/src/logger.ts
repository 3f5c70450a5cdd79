import { pino, type Logger } from "pino";

export type { Logger };

/** JSON logs on stdout, one `service` field on every line. */
export function createLogger(service: string, level = "info"): Logger {
  return pino({ level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });
}
