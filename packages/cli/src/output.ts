import { CutroomError, CutroomNetworkError } from "@cutroom/sdk";

/** Exit statuses: 0 done, 1 the API or the network refused, 2 the command line is wrong, 3 the job ended failed or canceled. */
export const exitCodes = { ok: 0, error: 1, usage: 2, jobFailed: 3 } as const;

/** An error of the CLI itself, in the API's envelope shape. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number = exitCodes.error,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const usageError = (message: string, details?: Record<string, unknown>) => new CliError("USAGE", message, exitCodes.usage, details);

/** The envelope `{"error": {code, message, details?, request_id?}}`: the API's own for its errors. */
export function envelopeOf(err: unknown): { error: { code: string; message: string; details?: unknown; request_id?: string; status?: number } } {
  if (err instanceof CutroomError) {
    return { error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}), ...(err.requestId ? { request_id: err.requestId } : {}), status: err.status } };
  }
  if (err instanceof CliError) return { error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } };
  if (err instanceof CutroomNetworkError) return { error: { code: "NETWORK_ERROR", message: err.message } };
  return { error: { code: "INTERNAL", message: (err as Error)?.message ?? String(err) } };
}

export const exitCodeOf = (err: unknown) => (err instanceof CliError ? err.exitCode : exitCodes.error);

/**
 * Where a command writes: with --json one JSON document on stdout and errors as the envelope on
 * stderr, nothing else; without, lines for a person, and progress on stderr (a bar on a terminal).
 */
export class Output {
  readonly tty: boolean;
  private barShown = false;

  constructor(readonly json: boolean) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  /** The command's answer: `value` as JSON, or `human(value)` for a person. */
  result<T>(value: T, human: (v: T) => string): void {
    this.endBar();
    if (this.json) process.stdout.write(`${JSON.stringify(value)}\n`);
    else {
      const text = human(value);
      if (text) process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
    }
  }

  /** A line of what is going on (human mode only, on stderr). */
  note(line: string): void {
    if (this.json) return;
    this.endBar();
    process.stderr.write(`${line}\n`);
  }

  /** A progress bar redrawn in place on a terminal; a plain line per call otherwise (the caller keeps those few). */
  progress(fraction: number, label: string): void {
    if (this.json) return;
    const pct = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
    if (!this.tty) {
      process.stderr.write(`${label} ${pct}%\n`);
      return;
    }
    const width = 30;
    const full = Math.round((pct / 100) * width);
    process.stderr.write(`\r[${"#".repeat(full)}${"-".repeat(width - full)}] ${String(pct).padStart(3)}% ${label}\x1b[K`);
    this.barShown = true;
  }

  endBar(): void {
    if (this.barShown) process.stderr.write("\n");
    this.barShown = false;
  }

  error(err: unknown): void {
    this.endBar();
    const { error } = envelopeOf(err);
    if (this.json) {
      const { status: _status, ...apiShape } = error;
      process.stderr.write(`${JSON.stringify({ error: apiShape })}\n`);
      return;
    }
    const lines = [`error: ${error.message} (${error.code}${error.status ? `, HTTP ${error.status}` : ""})`];
    if (error.details) lines.push(`  details: ${JSON.stringify(error.details)}`);
    if (error.request_id) lines.push(`  request id: ${error.request_id}`);
    process.stderr.write(`${lines.join("\n")}\n`);
  }
}

export const formatBytes = (n: number) => {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
};

/** Rows as aligned columns, with a header. */
export function table(header: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}
