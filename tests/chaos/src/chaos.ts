import { failures, verify, type Verdict } from "./checks.ts";
import type { ChaosCluster } from "./cluster.ts";
import { startLoad, type JobRecord, type LoadOptions } from "./load.ts";

/** A fault: what dies, and how (SIGKILL for processes; Postgres is stopped, as an operator or a crash would). */
export interface Fault {
  /** A process of the cluster (`job-service`, `gateway-2`, `nats-2`, `postgres`, …). */
  target: string;
  signal: "SIGKILL" | "SIGTERM";
}

export interface ChaosOptions {
  cluster: ChaosCluster;
  token: string;
  jobs: LoadOptions["jobs"];
  perSecond: number;
  faults: Fault[];
  /** Steady load before the first fault, to measure the baseline. */
  baselineMs: number;
  /** How long each target stays dead. */
  downMs: number;
  /** Steady load after each restart before the next fault. */
  settleMs: number;
  /** How long accepted jobs get to end once the load stops. */
  drainMs: number;
  /** The stated time: every job a fault slowed must have ended this long after the fault struck. */
  recoverWithinMs: number;
  log?: (line: string) => void;
}

export interface FaultFigures {
  target: string;
  signal: string;
  /** Jobs whose client saw an error (a retried POST, a broken stream) in this fault's phase. */
  jobsWithErrors: number;
  errors: number;
  /** What the clients saw, by kind (`post: 503 SERVICE_UNAVAILABLE`, `watch: closed 1006`, …). */
  kinds: Record<string, number>;
  /** From the fault to the last error a client saw in its phase, in ms (0: none seen). */
  errorsForMs: number;
  /** From the fault until the last job it slowed down had ended, in ms. */
  recoveryMs: number;
  /** Jobs accepted in the phase. */
  jobs: number;
  /** The jobs it slowed down most, to read what happened to them. */
  slowest: Pick<JobRecord, "n" | "id" | "type" | "firstTryAt" | "acceptedAt" | "terminalAt" | "posts" | "reconnects" | "errors">[];
}

export interface ChaosReport {
  perSecond: number;
  durationMs: number;
  baselineP50Ms: number;
  baselineP95Ms: number;
  recoverWithinMs: number;
  faults: FaultFigures[];
  verdict: Verdict;
  failures: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const countBy = (xs: string[]) => {
  const counts: Record<string, number> = {};
  for (const x of xs) counts[x] = (counts[x] ?? 0) + 1;
  return counts;
};
const latency = (j: JobRecord) => (j.terminalAt ?? Number.POSITIVE_INFINITY) - j.firstTryAt;

/**
 * Runs the load, then each fault in turn (kill, stay down, restart, settle), then drains and checks
 * that nothing was lost: every 202 ended, nobody charged twice, no reservation left, every watcher
 * saw 1..n ending in the terminal event.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => {});
  const load = startLoad({ gateways: o.cluster.gateways, token: o.token, jobs: o.jobs, perSecond: o.perSecond });
  await sleep(o.baselineMs);
  const phases: { fault: Fault; from: number; to: number }[] = [];
  for (const fault of o.faults) {
    const from = load.now();
    log(`${(from / 1000).toFixed(1)} s: ${fault.signal === "SIGKILL" ? "killing" : "stopping"} ${fault.target}`);
    await o.cluster.kill(fault.target, fault.signal);
    await sleep(o.downMs);
    await o.cluster.restart(fault.target);
    log(`${(load.now() / 1000).toFixed(1)} s: ${fault.target} is back`);
    await sleep(o.settleMs);
    phases.push({ fault, from, to: load.now() });
  }
  log("draining");
  await load.drain(o.drainMs);
  const durationMs = load.now();

  const baselineJobs = load.jobs.filter((j) => j.firstTryAt < o.baselineMs - 2000 && j.terminalAt !== undefined && j.errors.length === 0);
  const baseline = baselineJobs.map(latency);
  const [p50, p95] = [quantile(baseline, 0.5), quantile(baseline, 0.95)];
  // A job counts as slowed down by a fault when its client saw an error or it took far longer than its type usually takes.
  const usual = new Map(o.jobs.map(({ type }) => [type, quantile(baselineJobs.filter((j) => j.type === type).map(latency), 0.95)]));
  const isSlow = (j: JobRecord) => latency(j) > Math.max(2000, 3 * (usual.get(j.type) || p95));
  const faults = phases.map(({ fault, from, to }) => {
    const inPhase = load.jobs.filter((j) => j.firstTryAt >= from && j.firstTryAt < to);
    // Jobs already running when the fault struck are its too.
    const touched = load.jobs.filter((j) => j.firstTryAt < to && (j.terminalAt ?? Number.POSITIVE_INFINITY) >= from);
    const errors = touched.flatMap((j) => j.errors.filter((e) => e.at >= from && e.at < to));
    const hurt = touched.filter((j) => j.errors.some((e) => e.at >= from && e.at < to) || isSlow(j));
    return {
      target: fault.target,
      signal: fault.signal,
      jobs: inPhase.filter((j) => j.id).length,
      jobsWithErrors: new Set(touched.filter((j) => j.errors.some((e) => e.at >= from && e.at < to)).map((j) => j.n)).size,
      errors: errors.length,
      kinds: countBy(errors.map((e) => `${e.where}: ${e.what}`)),
      errorsForMs: errors.length === 0 ? 0 : Math.max(...errors.map((e) => e.at)) - from,
      recoveryMs: hurt.length === 0 ? 0 : Math.max(...hurt.map((j) => (j.terminalAt ?? durationMs) - from)),
      slowest: [...hurt]
        .sort((a, b) => (b.terminalAt ?? durationMs) - (a.terminalAt ?? durationMs))
        .slice(0, 3)
        .map(({ n, id, type, firstTryAt, acceptedAt, terminalAt, posts, reconnects, errors: e }) => ({ n, id, type, firstTryAt, acceptedAt, terminalAt, posts, reconnects, errors: e })),
    };
  });
  const verdict = await verify(o.cluster.databaseUrl, load.jobs);
  const slowRecoveries = faults
    .filter((f) => f.recoveryMs > o.recoverWithinMs)
    .map((f) => `${f.target}: the last job it slowed ended ${(f.recoveryMs / 1000).toFixed(1)} s after it struck (stated: ${o.recoverWithinMs / 1000} s)`);
  return { perSecond: o.perSecond, durationMs, baselineP50Ms: p50, baselineP95Ms: p95, recoverWithinMs: o.recoverWithinMs, faults, verdict, failures: [...failures(verdict), ...slowRecoveries] };
}

/** The figures as a Markdown table, as docs/RELIABILITY.md records them. */
export function reportTable(r: ChaosReport): string {
  const rows = r.faults.map(
    (f) =>
      `| ${f.target} | ${f.signal} | ${f.jobs} | ${f.jobsWithErrors} | ${f.errors} | ${(f.errorsForMs / 1000).toFixed(1)} | ${(f.recoveryMs / 1000).toFixed(1)} | ${Object.entries(f.kinds).map(([k, n]) => `${k} ×${n}`).join("; ")} |`,
  );
  const v = r.verdict;
  return [
    `${v.accepted} jobs accepted at ${r.perSecond}/s over ${(r.durationMs / 1000).toFixed(0)} s; baseline POST→terminal p50 ${r.baselineP50Ms} ms, p95 ${r.baselineP95Ms} ms; end states ${JSON.stringify(v.statuses)}.`,
    "",
    "| process | signal | jobs in phase | jobs whose client saw an error | errors | errors for (s) | recovered after (s) | what clients saw |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    r.failures.length === 0
      ? `Every check held: every 202 ended terminal, no job charged twice, no reservation left or without a job, every watcher saw a gap-free stream to its terminal event, and every fault's slowed jobs had ended within ${r.recoverWithinMs / 1000} s of it.`
      : `FAILED:\n${r.failures.map((f) => `- ${f}`).join("\n")}`,
  ].join("\n");
}

/** Every kind of process once (the first of its two instances, named after its app), a NATS node, and Postgres. */
export const fullFaults: Fault[] = [
  ...["worker-image", "worker-video", "worker-audio", "job-service", "billing-service", "storage-service", "auth-service", "gateway"].map((app) => ({ target: app, signal: "SIGKILL" as const })),
  { target: "nats-2", signal: "SIGKILL" },
  { target: "postgres", signal: "SIGTERM" },
];

/** npm test's share: the processes on a job's path whose death costs most. */
export const shortFaults: Fault[] = [
  { target: "worker-image", signal: "SIGKILL" },
  { target: "job-service", signal: "SIGKILL" },
  { target: "gateway", signal: "SIGKILL" },
  { target: "nats-2", signal: "SIGKILL" },
];
