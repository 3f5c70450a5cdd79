import { context, propagation, ROOT_CONTEXT, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { headers as msgHeaders, type MsgHdrs } from "@nats-io/transport-node";
import type { z } from "zod";
import type { BaseEnv } from "./env.ts";
import type { Logger } from "./logger.ts";

export { SpanKind, SpanStatusCode, type Context, type Context as TraceContext, type Span };

/**
 * Whether this process records spans (ADR 036). Off unless an OTLP endpoint is set, and then every
 * hook on a hot path (an RPC, a publish, a delivery, a request) costs this one check: no SDK, no
 * context lookup, no header. Code that traces tests `tracing.on` before building anything.
 */
export const tracing = { on: false };

// A no-op tracer until startTracing registers the SDK's provider: the API hands out the real one then.
const tracer = () => trace.getTracer("cutroom");

export type TracingEnv = Pick<z.output<typeof BaseEnv>, "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" | "OTEL_SERVICE_NAME" | "OTEL_BSP_SCHEDULE_DELAY">;

/** Where spans go: the traces endpoint as given, or the base endpoint's /v1/traces (the OTLP spec's rule); undefined when neither is set. */
export function tracesUrl(env: Pick<TracingEnv, "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT">): string | undefined {
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) return `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  return undefined;
}

/**
 * Starts exporting this process's spans over OTLP/HTTP (JSON bodies) when an endpoint is set, as
 * `OTEL_SERVICE_NAME` or `service`. Without one nothing is loaded: the SDK and the exporter are
 * imported only here, on demand. Returns what flushes and stops it at shutdown.
 */
export async function startTracing(env: TracingEnv, service: string, log: Logger): Promise<() => Promise<void>> {
  const url = tracesUrl(env);
  if (!url || tracing.on) return async () => {};
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/semantic-conventions"),
  ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: env.OTEL_SERVICE_NAME ?? service }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: env.OTEL_BSP_SCHEDULE_DELAY })],
  });
  // The AsyncLocalStorage context manager and the W3C traceparent/tracestate propagator.
  provider.register();
  tracing.on = true;
  log.info({ url, service: env.OTEL_SERVICE_NAME ?? service }, "exporting traces over OTLP");
  return async () => {
    await provider.shutdown().catch((err) => log.warn({ err }, "could not flush the last spans"));
  };
}

const setter: TextMapSetter<MsgHdrs> = { set: (h, key, value) => h.set(key, value) };
const getter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, key) => h?.get(key) || undefined,
  keys: (h) => (h ? h.keys() : []),
};

/** `h` (or new headers) with the active trace context's `traceparent`/`tracestate`. Only when tracing.on. */
export function injectTrace(h?: MsgHdrs, ctx: Context = context.active()): MsgHdrs {
  const out = h ?? msgHeaders();
  propagation.inject(ctx, out, setter);
  return out;
}

/** The trace context a NATS message carries; the root context when it carries none. Only when tracing.on. */
export const extractTrace = (h: MsgHdrs | undefined): Context => propagation.extract(context.active(), h, getter);

/** The active trace context, kept to carry on later (a job announced after its batch commits); undefined when tracing is off. */
export const currentTrace = (): Context | undefined => (tracing.on ? context.active() : undefined);

/** The trace context an HTTP request carries (traceparent/tracestate); the root context when none. Only when tracing.on. */
export const extractHttpTrace = (headers: Record<string, string | string[] | undefined>): Context => propagation.extract(ROOT_CONTEXT, headers);

/**
 * A span started now, with the context that has it active, for work no one function spans (an HTTP
 * request from its first hook to its response); the caller ends it. Only when tracing.on.
 */
export function startSpan(name: string, opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context }): { span: Span; ctx: Context } {
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, parent);
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Runs `fn` within a context currentTrace kept; just `fn` when there is none. */
export const withTrace = <T>(ctx: Context | undefined, fn: () => T): T => (ctx ? context.with(ctx, fn) : fn());

/**
 * Runs `fn` in a new span, child of `parent` (or of the active span), and ends it when `fn` settles:
 * a throw marks it as an error. Call only when tracing.on; `traced` checks for you.
 */
export function inSpan<T>(name: string, opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context }, fn: (span: Span) => Promise<T>): Promise<T> {
  const { span, ctx } = startSpan(name, opts);
  return context.with(ctx, async () => {
    try {
      return await fn(span);
    } catch (err) {
      markError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** `fn` in a span named `name` when tracing is on; `fn` itself, nothing more, when it is off. */
export function traced<T>(name: string, fn: () => Promise<T>): Promise<T> {
  return tracing.on ? inSpan(name, {}, fn) : fn();
}

/** Marks a span as failed with the error's message and an exception event. */
export function markError(span: Span | undefined, err: unknown): void {
  if (!span) return;
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/** The active span (tracing.on), to mark an error on or add an attribute to. */
export const activeSpan = (): Span | undefined => trace.getActiveSpan();
