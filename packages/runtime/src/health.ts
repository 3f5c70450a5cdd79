import type { Check, ServiceHealth } from "@cutroom/contracts";

/** Runs each named check with a deadline; a service is up only when every check is. */
export async function runChecks(service: string, checks: Record<string, () => Promise<unknown>>, timeoutMs = 2000): Promise<ServiceHealth> {
  const results: Record<string, Check> = {};
  await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      const started = performance.now();
      try {
        await withTimeout(check(), timeoutMs);
        results[name] = { status: "up", latency_ms: Math.round(performance.now() - started) };
      } catch (err) {
        results[name] = { status: "down", error: (err as Error).message };
      }
    }),
  );
  const status = Object.values(results).every((c) => c.status === "up") ? "up" : "down";
  return { status, service, checks: results };
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
