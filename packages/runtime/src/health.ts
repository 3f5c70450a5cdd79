import { healthCheckTimeoutMs, instanceHealthWindowMs, subjects, type Check, type Instance, type InstanceHealth, type RpcReply, type ServiceHealth } from "@cutroom/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "./logger.ts";

/**
 * Runs each named check with a deadline; a service is up only when every check is. The deadline is
 * short so that a hanging check is reported (down, timed out) within /health's window.
 */
export async function runChecks(service: string, checks: Record<string, () => Promise<unknown>>, timeoutMs = healthCheckTimeoutMs): Promise<ServiceHealth> {
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

/** This process as GET /health lists it; the random part tells apart two processes that share a host and pid (containers). */
export function newInstance(app: string): Instance {
  const host = hostname();
  return { id: `${app}-${host}-${process.pid}-${randomBytes(3).toString("hex")}`, host, pid: process.pid, started_at: new Date(performance.timeOrigin).toISOString() };
}

const encoder = new TextEncoder();

// A health function not built on runChecks may hang or throw: the instance still answers, down, in time.
const answerWithinMs = instanceHealthWindowMs - 200;

/**
 * Answers `svc.<name>.health.instances` without a queue group: every process replies with who it
 * is, so whoever collects the replies for a moment counts the replicas and sees which one is sick.
 */
export function serveInstanceHealth(
  nc: NatsConnection,
  name: string,
  instance: Instance,
  health: () => Promise<ServiceHealth & Pick<InstanceHealth, "load">>,
  log: Logger,
): { drain: () => Promise<void> } {
  const sub = nc.subscribe(subjects.instanceHealth(name), {
    callback: (err, msg) => {
      if (err) return log.warn({ err }, "instance health subscription failed");
      withTimeout(Promise.resolve().then(health), answerWithinMs)
        .catch((e: Error): ServiceHealth => {
          log.warn({ err: e }, "health check failed");
          return { status: "down", service: name, checks: { health: { status: "down", error: e.message } } };
        })
        .then((h) => {
          const reply: RpcReply = { ok: true, data: { ...h, ...instance } satisfies InstanceHealth };
          msg.respond(encoder.encode(JSON.stringify(reply)));
        })
        .catch((e) => log.warn({ err: e }, "instance health reply failed"));
    },
  });
  return { drain: () => sub.drain() };
}
