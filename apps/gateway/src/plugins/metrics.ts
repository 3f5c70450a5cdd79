import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { metricsRegistry } from "@cutroom/runtime";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { bearerToken } from "./auth.ts";

declare module "fastify" {
  interface FastifyInstance {
    metrics: Registry;
  }
}

export interface MetricsOptions {
  /** Gauges read at each scrape, by metric name. */
  gauges?: Record<string, { help: string; read: () => number }>;
  /** A bearer token that may read /metrics besides admins' access tokens (METRICS_TOKEN). */
  token?: string;
}

/**
 * Prometheus metrics: requests and their durations per route, method and status, the given gauges,
 * and the process's own (@cutroom/runtime's registry: CPU, memory, realtime connections…). On the
 * API port /metrics is for admins (or the METRICS_TOKEN bearer): route names and traffic are not for everyone.
 */
export const metricsPlugin = fp(async (app: FastifyInstance, opts: MetricsOptions) => {
  // This app's own, apart from the process's: tests build several apps in one process.
  const registry = new Registry();
  const labelNames = ["method", "route", "status"] as const;
  const requests = new Counter({ name: "cutroom_http_requests_total", help: "HTTP requests answered", labelNames, registers: [registry] });
  const duration = new Histogram({
    name: "cutroom_http_request_duration_seconds",
    help: "Time to answer an HTTP request (for WebSockets and SSE: the whole stream)",
    labelNames,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  for (const [name, gauge] of Object.entries(opts.gauges ?? {})) {
    new Gauge({
      name,
      help: gauge.help,
      registers: [registry],
      collect() {
        this.set(gauge.read());
      },
    });
  }
  app.decorate("metrics", Registry.merge([registry, metricsRegistry]));

  app.addHook("onResponse", async (req, reply) => {
    // The route pattern, never the raw URL: ids and tokens would make a series per request.
    const labels = { method: req.method, route: req.routeOptions.url ?? "unmatched", status: String(reply.statusCode) };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
  });

  const isMetricsToken = opts.token ? sameSecret(opts.token) : () => false;
  const authorize = async (req: FastifyRequest) => {
    const token = bearerToken(req);
    if (token && isMetricsToken(token)) return;
    await app.requireAdmin(req);
  };
  app.get("/metrics", { schema: { hide: true }, onRequest: authorize }, async (_req, reply) => {
    reply.type(app.metrics.contentType);
    return app.metrics.metrics();
  });
});

/** A constant-time comparison with the configured secret (digests, so lengths never differ). */
function sameSecret(secret: string) {
  const expected = createHash("sha256").update(secret).digest();
  return (given: string) => timingSafeEqual(createHash("sha256").update(given).digest(), expected);
}
