import { randomUUID } from "node:crypto";
import {
  AppError,
  type RpcReply,
  RpcRequest,
  errorStatus,
  rpc,
  subjects,
  zodDetails,
  type Caller,
  type ErrorCode,
  type RpcMethod,
  type RpcReq,
  type RpcReqParsed,
  type RpcRes,
  type RpcService,
  type Instance,
  type ServiceHealth,
} from "@cutroom/contracts";
import type { NatsConnection, Msg, MsgHdrs } from "@nats-io/transport-node";
import type { z } from "zod";
import { newInstance, serveInstanceHealth } from "./health.ts";
import { NoReply, replyInbox } from "./rpc-replies.ts";
import { activeSpan, extractTrace, injectTrace, inSpan, markError, SpanKind, tracing } from "./tracing.ts";
import type { Logger } from "./logger.ts";

export interface RpcContext {
  requestId: string;
  /** The end user on whose behalf the call is made; null for system calls. */
  caller: Caller | null;
  /** The end user's address, when the call started at the gateway. */
  clientIp?: string | null;
  /**
   * When the caller stops waiting (epoch ms, this process's clock); absent when it did not say. Work
   * committed after it is answered to nobody: the caller has already told its client 503.
   */
  deadline?: number;
  log: Logger;
}

export type RpcHandlers<S extends RpcService> = {
  [M in RpcMethod<S>]: (body: RpcReqParsed<S, M>, ctx: RpcContext) => Promise<RpcRes<S, M>>;
};

export interface RpcServer {
  /** Stops taking requests and waits for the ones in flight. */
  drain: () => Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A handler's context; its child logger is made when the handler first logs, as most never do. */
function rpcContext(log: Logger, method: string, envelope: RpcRequest, receivedAt: number): RpcContext {
  let child: Logger | undefined;
  const requestId = envelope.request_id;
  return {
    requestId,
    caller: envelope.caller,
    clientIp: envelope.client_ip ?? null,
    ...(envelope.timeout_ms ? { deadline: receivedAt + envelope.timeout_ms } : {}),
    get log() {
      child ??= log.child({ request_id: requestId, rpc: method });
      return child;
    },
  };
}

/**
 * Answers `svc.<service>.<method>` in a queue group, so replicas share the load.
 * Parses each request with its contract; errors go back as codes, never as stack traces.
 */
export function serveRpc<S extends RpcService>(
  nc: NatsConnection,
  service: S,
  handlers: RpcHandlers<S>,
  log: Logger,
  opts: { instance?: Instance } = {},
): RpcServer {
  const inflight = new Set<Promise<void>>();
  const methods = rpc[service] as Record<string, { req: z.ZodType; res: z.ZodType }>;
  const health = (handlers as Partial<Record<string, (b: unknown, c: RpcContext) => Promise<ServiceHealth>>>).health;
  const instanceHealth = health
    ? serveInstanceHealth(nc, service, opts.instance ?? newInstance(`${service}-service`), async () => ({
        ...(await health({}, { requestId: randomUUID(), caller: null, log })),
        load: { in_flight: inflight.size },
      }), log)
    : undefined;

  const prefixLength = `svc.${service}.`.length;
  const handle = async (msg: Msg) => {
    const method = msg.subject.slice(prefixLength);
    const receivedAt = Date.now();
    let requestId = "unknown";
    let reply: RpcReply;
    try {
      // The envelope and body come from another process (the gateway, a worker): both are parsed.
      const envelope = RpcRequest.parse(JSON.parse(decoder.decode(msg.data)));
      requestId = envelope.request_id;
      const contract = methods[method];
      const handler = (handlers as Record<string, (b: unknown, c: RpcContext) => Promise<unknown>>)[method];
      if (!contract || !handler) throw new AppError("NOT_FOUND", `unknown method ${service}.${method}`);
      const body = contract.req.safeParse(envelope.body);
      if (!body.success) throw new AppError("INVALID_INPUT", "request failed validation", zodDetails(body.error));
      reply = { ok: true, data: await handler(body.data, rpcContext(log, method, envelope, receivedAt)) };
    } catch (err) {
      if (err instanceof AppError) {
        reply = { ok: false, error: { code: err.code, message: err.message, details: err.details } };
      } else if (isDatabaseUnavailable(err)) {
        // An outage is a 503 the client may retry, not our bug.
        log.warn({ err, request_id: requestId, rpc: method }, "the database is unavailable");
        reply = { ok: false, error: { code: "SERVICE_UNAVAILABLE", message: `${service} service cannot reach its database`, details: { service } } };
      } else {
        log.error({ err, request_id: requestId, rpc: method }, "rpc handler failed");
        if (tracing.on) markError(activeSpan(), err);
        reply = { ok: false, error: { code: "INTERNAL", message: "internal error" } };
      }
    }
    if (msg.reply) msg.respond(encoder.encode(JSON.stringify(reply)));
  };

  // The caller's span's child, in the caller's trace (its traceparent header).
  const handleTraced = (msg: Msg) =>
    inSpan(`${service}.${msg.subject.slice(prefixLength)}`, { kind: SpanKind.SERVER, parent: extractTrace(msg.headers), attributes: { "rpc.system": "nats", "rpc.service": service } }, () => handle(msg));

  // A callback, not the async iterator: no promise and queue step per message before the handler starts.
  const sub = nc.subscribe(subjects.rpc(service, "*"), {
    queue: `svc.${service}`,
    callback: (err, msg) => {
      if (err) {
        log.error({ err }, "rpc subscription ended");
        return;
      }
      const p: Promise<void> = (tracing.on ? handleTraced(msg) : handle(msg))
        .catch((e) => log.warn({ err: e, rpc: msg.subject }, "could not answer an rpc request"))
        .finally(() => inflight.delete(p));
      inflight.add(p);
    },
  });

  return {
    drain: async () => {
      await Promise.all([sub.drain(), instanceHealth?.drain()]);
      await Promise.allSettled([...inflight]);
    },
  };
}

export interface CallContext {
  requestId?: string;
  caller?: Caller | null;
  /** The end user's address (the gateway's `req.ip`), for per-address throttles. */
  clientIp?: string | null;
  /** The deadline of the request being served (RpcContext.deadline): a call made for it waits no longer. */
  deadline?: number;
}

export interface RpcClient {
  call<S extends RpcService, M extends RpcMethod<S>>(service: S, method: M, body: RpcReq<S, M>, ctx?: CallContext): Promise<RpcRes<S, M>>;
}

/**
 * Calls another service. A service that is down answers 503 at once (no responders)
 * or after `timeoutMs` (or at `ctx.deadline`, if sooner), never a hang. The callee is told how long
 * the caller waits (`timeout_ms`), so it can refuse to commit what nobody will hear of.
 */
export function createRpcClient(nc: NatsConnection, opts: { timeoutMs: number }): RpcClient {
  async function send<S extends RpcService, M extends RpcMethod<S>>(service: S, method: M, body: RpcReq<S, M>, ctx: CallContext, headers?: MsgHdrs): Promise<RpcRes<S, M>> {
    const timeout = Math.min(opts.timeoutMs, ctx.deadline === undefined ? Infinity : Math.floor(ctx.deadline - Date.now()));
    if (timeout <= 0) throw rpcTimedOut(service);
    const envelope: RpcRequest = { request_id: ctx.requestId ?? randomUUID(), caller: ctx.caller ?? null, client_ip: ctx.clientIp ?? null, timeout_ms: timeout, body };
    let raw: Msg;
    try {
      raw = await replyInbox(nc).request(subjects.rpc(service, method), encoder.encode(JSON.stringify(envelope)), timeout, headers);
    } catch (err) {
      throw new AppError("SERVICE_UNAVAILABLE", `${service} service is unavailable`, { service, reason: err instanceof NoReply ? err.reason : "unreachable" });
    }
    const reply = readReply(raw);
    if (!reply) throw malformedReply(service, method);
    if (!reply.ok) throw toAppError(reply.error);
    // The data is another process's: parsed with its contract (a service of another version mid-deploy).
    const contract = (rpc[service] as Record<string, { res: z.ZodType }>)[method]!;
    const data = contract.res.safeParse(reply.data);
    if (!data.success) throw malformedReply(service, method);
    return data.data as never;
  }
  return {
    call(service, method, body, ctx = {}) {
      if (!tracing.on) return send(service, method, body, ctx);
      // A client span whose context rides in the request's headers (ADR 036).
      return inSpan(`${service}.${method}`, { kind: SpanKind.CLIENT, attributes: { "rpc.system": "nats", "rpc.service": service } }, () => send(service, method, body, ctx, injectTrace()));
    },
  };
}

/**
 * What a caller whose wait ran out answers (503): a callee past its caller's deadline gives the same,
 * so the client hears one story whichever side noticed first.
 */
export const rpcTimedOut = (service: string) => new AppError("SERVICE_UNAVAILABLE", `${service} service is unavailable`, { service, reason: "timeout" });

/** An error reply as an AppError; a code this version does not know becomes INTERNAL. */
export function toAppError(error: { code: string; message: string; details?: Record<string, unknown> }): AppError {
  const code = (error.code in errorStatus ? error.code : "INTERNAL") as ErrorCode;
  return new AppError(code, error.message, error.details);
}

// A reply that breaks the contract is our bug, not the client's: a 500, never a 4xx with our field paths.
const malformedReply = (service: string, method: string) => new AppError("INTERNAL", `malformed reply from ${service}.${method}`);

/**
 * The reply envelope (RpcReply) checked by hand: two shapes of a few fields, where zod's union costs
 * more than the rest of the check; the data inside is parsed with its method's contract. Undefined when malformed.
 */
function readReply(msg: Msg): RpcReply | undefined {
  let r: { ok?: unknown; data?: unknown; error?: { code?: unknown; message?: unknown; details?: unknown } | null };
  try {
    r = JSON.parse(decoder.decode(msg.data));
  } catch {
    return undefined;
  }
  if (typeof r !== "object" || r === null) return undefined;
  if (r.ok === true) return { ok: true, data: r.data };
  const e = r.error;
  if (r.ok !== false || typeof e !== "object" || e === null || typeof e.code !== "string" || typeof e.message !== "string") return undefined;
  if (e.details === undefined) return { ok: false, error: { code: e.code, message: e.message } };
  if (typeof e.details !== "object" || e.details === null || Array.isArray(e.details)) return undefined;
  return { ok: false, error: { code: e.code, message: e.message, details: e.details as Record<string, unknown> } };
}

// postgres.js connection failures, and Postgres refusing work while it starts, stops or is full.
const UNAVAILABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT", "57P01", "57P02", "57P03", "53300"]);

/** Whether `err` (or its cause, as drizzle wraps driver errors) means the database cannot be reached right now. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === "string" && UNAVAILABLE_CODES.has(e.code)) return true;
    const errors = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(errors) && errors.some((x) => isDatabaseUnavailable(x))) return true;
  }
  return false;
}
