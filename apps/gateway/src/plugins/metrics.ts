import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

/** Request counts and total time per route and status, plus the given gauges, in Prometheus' text format at /metrics. */
export const metricsPlugin = fp(async (app: FastifyInstance, opts: { gauges?: Record<string, () => number> }) => {
  const counts = new Map<string, { n: number; seconds: number }>();
  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    const key = `method="${req.method}",route="${route}",status="${reply.statusCode}"`;
    const entry = counts.get(key) ?? { n: 0, seconds: 0 };
    entry.n += 1;
    entry.seconds += reply.elapsedTime / 1000;
    counts.set(key, entry);
  });
  app.get("/metrics", { schema: { hide: true } }, async (_req, reply) => {
    const lines = [
      "# TYPE cutroom_http_requests_total counter",
      ...[...counts].map(([k, v]) => `cutroom_http_requests_total{${k}} ${v.n}`),
      "# TYPE cutroom_http_request_seconds_total counter",
      ...[...counts].map(([k, v]) => `cutroom_http_request_seconds_total{${k}} ${v.seconds.toFixed(6)}`),
      ...Object.entries(opts.gauges ?? {}).flatMap(([name, read]) => [`# TYPE ${name} gauge`, `${name} ${read()}`]),
    ];
    reply.type("text/plain; version=0.0.4");
    return lines.join("\n") + "\n";
  });
});
