/** How a supervised process is restarted after an exit nobody asked for. */
export interface RestartOptions {
  /** Restarts in a row, each dying before it ran `healthyAfterMs`, before giving up (a crash loop). */
  maxRestarts?: number;
  /** Wait before the first restart; doubled for each next one, up to `maxDelayMs`. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** A run this long counts as healthy: the next death starts again from `firstDelayMs` and a fresh budget. */
  healthyAfterMs?: number;
}

export interface SuperviseOptions extends RestartOptions {
  /** Told before each restart (npm start prints it). */
  onRestart?: (name: string, reason: string, delayMs: number) => void;
  /** Told once when `name` keeps dying: it is left down. `message` names it and where its log is. */
  onGiveUp?: (name: string, message: string) => void;
}

export const restartDefaults: Required<RestartOptions> = { maxRestarts: 5, firstDelayMs: 500, maxDelayMs: 10_000, healthyAfterMs: 30_000 };

/**
 * The restart budget of one process. The window is "since its last healthy run" rather than a
 * fixed time: on a loaded machine slow starts would otherwise stretch a crash loop past any window.
 */
export class RestartBudget {
  private readonly opts: Required<RestartOptions>;
  private restarts = 0;
  private startedAt = 0;

  constructor(opts: RestartOptions = {}) {
    this.opts = { ...restartDefaults, ...stripUndefined(opts) };
  }

  started(now = Date.now()) {
    this.startedAt = now;
  }

  /** The wait before restarting a process that died at `now`, or undefined to give up. */
  afterExit(now = Date.now()): number | undefined {
    if (now - this.startedAt >= this.opts.healthyAfterMs) this.restarts = 0;
    if (this.restarts >= this.opts.maxRestarts) return undefined;
    return Math.min(this.opts.maxDelayMs, this.opts.firstDelayMs * 2 ** this.restarts++);
  }

  get count(): number {
    return this.restarts;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** How a process ended, for messages: `exit code 1` or `signal SIGKILL`. */
export function exitReason(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `exit code ${code}`;
}

/** The one loud line when supervision stops trying: what died, how often, how, and where to look. */
export function giveUpMessage(name: string, deaths: number, lastReason: string, logFile: string | undefined, opts: RestartOptions = {}): string {
  const healthy = Math.round((opts.healthyAfterMs ?? restartDefaults.healthyAfterMs) / 1000);
  return `${name} died ${deaths} times in a row, each time before it had run ${healthy} s (last: ${lastReason}); gave up restarting it.${logFile ? ` Its log: ${logFile}` : ""}`;
}
