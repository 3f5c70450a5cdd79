import { AppError, Uuid, isAppError, type Caller, IdParams } from "@cutroom/contracts";
import type { NatsConnection, RpcClient } from "@cutroom/runtime";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { WebSocket } from "ws";
import { z } from "zod";
import { bearerToken, verifyOrThrow, type TokenVerifier } from "../plugins/auth.ts";
import { authErrors, errorResponses } from "../plugins/openapi.ts";
import { createCoalescer } from "../realtime/coalesce.ts";
import type { ConnectionLimit } from "../realtime/connection-limit.ts";
import type { EventHub } from "../realtime/event-hub.ts";
import { followJob, followPipeline, followProject, type StreamItem } from "../realtime/job-stream.ts";
import { followWorkers } from "../realtime/worker-stream.ts";
import type { WorkerRegistry } from "../worker-registry.ts";

interface Deps {
  rpc: RpcClient;
  nc: NatsConnection;
  hub: EventHub;
  verifier: TokenVerifier;
  connections: ConnectionLimit;
  /** The worker registry, for admins' subscribe_workers; absent: no worker events. */
  workers?: WorkerRegistry;
}

const PING_EVERY_MS = 20_000;
const POLICY_VIOLATION = 1008;
const INTERNAL_ERROR = 1011;
// "Try again later": what a 503 is over HTTP; a client should reconnect (with `since`) after a pause.
const TRY_AGAIN_LATER = 1013;
const BEARER_PROTOCOL = "bearer";

/** The header, else an `access_token` query parameter: browsers' EventSource and WebSocket cannot set headers. */
function headerOrQueryToken(req: FastifyRequest): string | undefined {
  const query = (req.query as { access_token?: unknown }).access_token;
  return bearerToken(req) ?? (typeof query === "string" && query ? query : undefined);
}

/** WebSocket clients pass the token as a header, an `access_token` query parameter, or a subprotocol ["bearer", token]. */
function wsToken(req: FastifyRequest): string | undefined {
  const token = headerOrQueryToken(req);
  if (token) return token;
  const protocols = String(req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
  const i = protocols.indexOf(BEARER_PROTOCOL);
  return i >= 0 ? protocols[i + 1] : undefined;
}

async function callerOf(token: string | undefined, verifier: TokenVerifier): Promise<Caller> {
  if (!token) throw new AppError("UNAUTHORIZED", "a Bearer access token is required");
  return verifyOrThrow(verifier, token);
}

/** The socket's caller, holding one of their connection slots until it closes (RATE_LIMITED past the limit). */
async function socketCaller(socket: WebSocket, req: FastifyRequest, { verifier, connections }: Pick<Deps, "verifier" | "connections">): Promise<Caller> {
  const caller = await callerOf(wsToken(req), verifier);
  const release = connections.acquire(caller.user_id, "websocket");
  socket.once("close", release);
  if (socket.readyState === socket.CLOSED) release();
  return caller;
}

/**
 * Pings every socket each 20 s and ends those that did not answer the last ping. One timer and two
 * shared listeners for all of them, rather than a timer and closures per socket (docs/adr/029).
 */
function createKeepAlive() {
  // Each open socket: whether it answered since the last ping.
  const sockets = new Map<WebSocket, boolean>();
  let timer: NodeJS.Timeout | undefined;
  function answered(this: WebSocket) {
    sockets.set(this, true);
  }
  function closed(this: WebSocket) {
    sockets.delete(this);
  }
  const sweep = () => {
    for (const [socket, alive] of sockets) {
      if (!alive) {
        socket.terminate();
        continue;
      }
      sockets.set(socket, false);
      socket.ping();
    }
  };
  return {
    add(socket: WebSocket) {
      sockets.set(socket, true);
      socket.on("pong", answered);
      socket.on("close", closed);
      timer ??= setInterval(sweep, PING_EVERY_MS).unref();
    },
    stop: () => clearInterval(timer),
  };
}

/** The sinks a watch sends to, made outside the handlers so that they hold only the socket. */
const sendTo = (socket: WebSocket) => (item: object) => send(socket, item);
const closeWhenEnded = (socket: WebSocket, what: string) => () => socket.close(1000, `${what} finished`);

// The hub hands every watcher of a job the same event object: it is serialised once, and each socket sends that Buffer.
const frames = new WeakMap<object, Buffer>();
const sseChunks = new WeakMap<object, string>();
const send = (socket: WebSocket, payload: object) => {
  if (socket.readyState !== socket.OPEN) return;
  let frame = frames.get(payload);
  if (!frame) frames.set(payload, (frame = Buffer.from(JSON.stringify(payload))));
  socket.send(frame, { binary: false });
};
const closeReason = (err: unknown) => (isAppError(err) ? `${err.code}: ${err.message}` : "INTERNAL: internal error").slice(0, 120);

/** The close code for a refused watch: 1013 when a service is unavailable, 1011 for our bugs, else 1008. */
function closeCode(err: unknown): number {
  if (!isAppError(err)) return INTERNAL_ERROR;
  if (err.status === 503) return TRY_AGAIN_LATER;
  return err.status >= 500 ? INTERNAL_ERROR : POLICY_VIOLATION;
}

/** As the HTTP error handler does: server-side failures are logged with the request id, the client's own are not. */
function logFailure(req: FastifyRequest, err: unknown) {
  if (!isAppError(err)) req.log.error({ err }, "job watch failed");
  else if (err.status >= 500) req.log.warn({ err }, "job watch failed");
}

export const ClientMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("subscribe_job"), job_id: Uuid, since: z.number().int().min(0).optional() }),
  z.object({ type: z.literal("unsubscribe_job"), job_id: Uuid }),
  z.object({ type: z.literal("subscribe_pipeline"), pipeline_id: Uuid, since: z.number().int().min(0).optional() }),
  z.object({ type: z.literal("unsubscribe_pipeline"), pipeline_id: Uuid }),
  z.object({ type: z.literal("subscribe_project"), project_id: Uuid }),
  z.object({ type: z.literal("unsubscribe_project"), project_id: Uuid }),
  // Admins only: worker_health for every worker instance, now and at each change (ADR 038).
  z.object({ type: z.literal("subscribe_workers") }),
  z.object({ type: z.literal("unsubscribe_workers") }),
  z.object({ type: z.literal("ping") }),
]);
type ClientMessage = z.infer<typeof ClientMessage>;

/** What a /ws message subscribes to: its key in the socket's subscriptions and the id field its replies carry. */
function target(msg: Exclude<ClientMessage, { type: "ping" | "subscribe_workers" | "unsubscribe_workers" }>): { key: string; ref: Record<string, string> } {
  if ("job_id" in msg) return { key: `job:${msg.job_id}`, ref: { job_id: msg.job_id } };
  if ("pipeline_id" in msg) return { key: `pipeline:${msg.pipeline_id}`, ref: { pipeline_id: msg.pipeline_id } };
  return { key: `project:${msg.project_id}`, ref: { project_id: msg.project_id } };
}

export async function realtimeRoutes(base: FastifyInstance, deps: Deps) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const { rpc, nc, hub, verifier, connections } = deps;
  const coalesce = createCoalescer();
  const keepAlive = createKeepAlive();
  app.addHook("onClose", async () => keepAlive.stop());

  type Follow = (o: { caller: Caller; requestId: string; log: FastifyRequest["log"]; id: string; since?: number; send: (item: object) => void; onEnd: () => void }) => Promise<() => void>;
  const followers: Record<"job" | "pipeline", Follow> = {
    job: (o) => followJob({ rpc, nc, hub, coalesce, ...o, jobId: o.id }),
    pipeline: (o) => followPipeline({ rpc, nc, hub, coalesce, ...o, pipelineId: o.id }),
  };

  // One job or pipeline: snapshot, then its events; closes normally after the terminal event.
  for (const what of ["job", "pipeline"] as const) {
    app.get(
      `/ws/${what}s/:id`,
      { websocket: true, schema: { hide: true, params: z.object({ id: z.string() }), querystring: z.object({ since: z.coerce.number().int().min(0).optional(), access_token: z.string().optional() }) } },
      async (socket, req) => {
        keepAlive.add(socket);
        let stop: (() => void) | undefined;
        socket.on("close", () => stop?.());
        socket.on("message", (raw) => {
          const msg = ClientMessage.safeParse(safeJson(raw.toString()));
          if (msg.success && msg.data.type === "ping") send(socket, { type: "pong" });
        });
        try {
          const caller = await socketCaller(socket, req, deps);
          const id = Uuid.safeParse(req.params.id);
          if (!id.success) throw new AppError("NOT_FOUND", `${what} not found`);
          stop = await followers[what]({
            caller,
            requestId: req.id,
            log: req.log,
            id: id.data,
            since: req.query.since,
            send: sendTo(socket),
            onEnd: closeWhenEnded(socket, what),
          });
          if (socket.readyState !== socket.OPEN) stop();
        } catch (err) {
          logFailure(req, err);
          socket.close(closeCode(err), closeReason(err));
        }
      },
    );
  }

  // Many jobs, pipelines and projects on one socket: subscribe_* / unsubscribe_* / ping.
  app.get("/ws", { websocket: true, schema: { hide: true } }, async (socket, req) => {
    keepAlive.add(socket);
    // One entry per job, pipeline or project; an entry replaced or removed while its subscription starts is stopped, not kept.
    const subscriptions = new Map<string, { stop: () => void }>();
    socket.on("close", () => {
      for (const entry of subscriptions.values()) entry.stop();
      subscriptions.clear();
    });
    // Listen before verifying the token: a client may send right after the socket opens.
    const authenticated = socketCaller(socket, req, deps);
    authenticated.catch((err) => {
      logFailure(req, err);
      socket.close(closeCode(err), closeReason(err));
    });
    socket.on("message", async (raw) => {
      const caller = await authenticated.catch(() => undefined);
      if (!caller) return;
      const parsed = ClientMessage.safeParse(safeJson(raw.toString()));
      if (!parsed.success) {
        return send(socket, { type: "error", code: "INVALID_INPUT", message: "expected subscribe_job, unsubscribe_job, subscribe_pipeline, unsubscribe_pipeline, subscribe_project, unsubscribe_project, subscribe_workers, unsubscribe_workers or ping" });
      }
      const msg = parsed.data;
      if (msg.type === "ping") return send(socket, { type: "pong" });
      if (msg.type === "unsubscribe_workers") {
        subscriptions.get("workers")?.stop();
        subscriptions.delete("workers");
        return send(socket, { type: "unsubscribed", workers: true });
      }
      if (msg.type === "subscribe_workers") {
        if (caller.role !== "admin") return send(socket, { type: "error", code: "FORBIDDEN", message: "subscribe_workers is for admins only" });
        if (!deps.workers || subscriptions.has("workers")) return;
        subscriptions.set("workers", { stop: followWorkers(deps.workers, sendTo(socket)) });
        return;
      }
      const { key, ref } = target(msg);
      if (msg.type === "unsubscribe_job" || msg.type === "unsubscribe_pipeline" || msg.type === "unsubscribe_project") {
        subscriptions.get(key)?.stop();
        subscriptions.delete(key);
        return send(socket, { type: "unsubscribed", ...ref });
      }
      if (subscriptions.has(key)) return;
      const entry = { stop: () => {} };
      const current = () => subscriptions.get(key) === entry;
      subscriptions.set(key, entry);
      const common = { caller, requestId: req.id, log: req.log };
      try {
        // A snapshot names what it is of; events name it already.
        const deliver = (item: { type: string }) => current() && send(socket, item.type === "snapshot" ? { ...item, ...ref } : item);
        const stop =
          msg.type === "subscribe_project"
            ? await followProject({ rpc, hub, ...common, projectId: msg.project_id, send: deliver })
            : await followers[msg.type === "subscribe_job" ? "job" : "pipeline"]({
                ...common,
                id: msg.type === "subscribe_job" ? msg.job_id : msg.pipeline_id,
                since: msg.since,
                send: (item) => deliver(item as { type: string }),
                onEnd: () => current() && subscriptions.delete(key),
              });
        if (current()) entry.stop = stop;
        else stop();
      } catch (err) {
        if (!current()) return;
        logFailure(req, err);
        subscriptions.delete(key);
        send(socket, { type: "error", ...ref, code: isAppError(err) ? err.code : "INTERNAL", message: isAppError(err) ? err.message : "internal error" });
      }
    });
  });

  // The same events as Server-Sent Events; `Last-Event-ID` (or ?since) resumes.
  app.get(
    "/api/v1/jobs/:id/events",
    {
      onRequest: async (req) => {
        req.caller = await callerOf(headerOrQueryToken(req), verifier);
      },
      schema: {
        tags: ["jobs"],
        operationId: "streamJobEvents",
        summary: "A job's events as Server-Sent Events",
        description:
          "Server-Sent Events: `snapshot`, then each job event with `id: <seq>`. Send Last-Event-ID to resume. A browser's EventSource, which cannot set headers, passes the token as `?access_token=`. Only stored events are sent. 503 SERVICE_UNAVAILABLE when the stored events cannot be read right now: retry with Last-Event-ID.",
        security: [{ bearer: [] }, { accessTokenQuery: [] }],
        params: IdParams,
        querystring: z.object({ since: z.coerce.number().int().min(0).optional(), access_token: z.string().optional() }),
        response: {
          200: { description: "The event stream", content: { "text/event-stream": { schema: z.string() } } },
          ...errorResponses(...authErrors, 404, 422),
        },
      },
    },
    async (req, reply) => {
      const lastEventId = Number(req.headers["last-event-id"]);
      const since = Number.isInteger(lastEventId) && lastEventId >= 0 ? lastEventId : req.query.since;
      const lines: string[] = [];
      let raw: typeof reply.raw | undefined;
      const write = (item: StreamItem) => {
        let chunk = sseChunks.get(item);
        if (!chunk) {
          chunk = item.type === "snapshot" ? `event: snapshot\ndata: ${JSON.stringify(item)}\n\n` : `id: ${item.seq}\nevent: ${item.type}\ndata: ${JSON.stringify(item)}\n\n`;
          sseChunks.set(item, chunk);
        }
        if (raw) raw.write(chunk);
        else lines.push(chunk);
      };
      let ended = false;
      const release = connections.acquire(req.caller!.user_id, "sse");
      const stop = await followJob({ rpc, nc, hub, coalesce, caller: req.caller!, requestId: req.id, log: req.log, jobId: req.params.id, since, send: write, onEnd: () => {
        ended = true;
        raw?.end();
      } }).catch((err: unknown) => {
        release();
        throw err;
      });
      reply.hijack();
      raw = reply.raw;
      // The headers set so far (CORS among them) go out too: the raw response bypasses the reply.
      for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) raw.setHeader(name, value);
      raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-request-id": req.id });
      for (const l of lines) raw.write(l);
      if (ended) {
        raw.end();
        release();
        return;
      }
      const heartbeat = setInterval(() => raw!.write(": keep-alive\n\n"), 15_000);
      raw.on("close", () => {
        clearInterval(heartbeat);
        stop();
        release();
      });
    },
  );
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
