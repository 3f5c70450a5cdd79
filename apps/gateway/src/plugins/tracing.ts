import { extractHttpTrace, SpanKind, SpanStatusCode, startSpan, tracing, withTrace, type Span, type TraceContext } from "@cutroom/runtime";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";

/**
 * A server span per HTTP request, child of the client's traceparent if it sent one, active while the
 * route's hooks and handler run, so the RPCs they make are its children (ADR 036). Registered only
 * when tracing is on: without an endpoint the gateway has no hook of it at all.
 */
export const tracingPlugin = fp(async (app: FastifyInstance) => {
  if (!tracing.on) return;
  const spans = new WeakMap<FastifyRequest, { span: Span; ctx: TraceContext }>();
  const end = (req: FastifyRequest, status?: number) => {
    const t = spans.get(req);
    if (!t) return;
    spans.delete(req);
    if (status !== undefined) t.span.setAttribute("http.response.status_code", status);
    if (status === undefined || status >= 500) t.span.setStatus({ code: SpanStatusCode.ERROR, ...(status === undefined ? { message: "the client went away" } : {}) });
    t.span.end();
  };

  app.addHook("onRequest", (req, _reply, done) => {
    // A WebSocket lives for as long as its client watches: no request span to hold open.
    if (req.headers.upgrade) return done();
    const route = req.routeOptions.url ?? "unmatched";
    const t = startSpan(`${req.method} ${route}`, {
      kind: SpanKind.SERVER,
      parent: extractHttpTrace(req.headers),
      attributes: { "http.request.method": req.method, "http.route": route, "cutroom.request_id": req.id },
    });
    spans.set(req, t);
    withTrace(t.ctx, done);
  });
  // The body is read on the socket's own callbacks, outside the context onRequest set: set again before the handler.
  app.addHook("preHandler", (req, _reply, done) => {
    const t = spans.get(req);
    if (t) withTrace(t.ctx, done);
    else done();
  });
  app.addHook("onResponse", (req, reply, done) => {
    end(req, reply.statusCode);
    done();
  });
  app.addHook("onRequestAbort", (req, done) => {
    end(req);
    done();
  });
});
