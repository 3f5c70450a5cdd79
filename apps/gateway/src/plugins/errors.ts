import { AppError, type ErrorEnvelope } from "@cutroom/contracts";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";

export function envelope(err: AppError, requestId: string): ErrorEnvelope {
  return { error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}), request_id: requestId } };
}

export function sendError(reply: FastifyReply, err: AppError) {
  // A limit's window end (unix seconds, in any service's RATE_LIMITED details) tells the client when to come back.
  const details = err.details as { limit?: unknown; reset?: unknown } | undefined;
  if (err.code === "RATE_LIMITED" && typeof details?.reset === "number") {
    reply.header("retry-after", Math.max(1, details.reset - Math.floor(Date.now() / 1000)));
    if (typeof details.limit === "number") {
      reply.header("x-ratelimit-limit", details.limit);
      reply.header("x-ratelimit-remaining", 0);
      reply.header("x-ratelimit-reset", details.reset);
    }
  }
  return reply.code(err.status).type("application/json").send(envelope(err, reply.request.id));
}

/** Maps Fastify's own errors (parsing, limits, validation) onto our codes. */
function toAppError(err: FastifyError, req: FastifyRequest): AppError | undefined {
  if (err instanceof AppError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = err.validationContext ?? "body";
    const fields = err.validation.map((v) => ({
      path: [where, ...String(v.instancePath ?? "").split("/").filter(Boolean)].join("."),
      message: v.message ?? "invalid",
      code: (v.params as { issue?: { code?: string } })?.issue?.code ?? v.keyword,
    }));
    return new AppError("INVALID_INPUT", `request ${where} failed validation`, { fields });
  }
  switch (err.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new AppError("UNSUPPORTED_MEDIA_TYPE", `content type ${req.headers["content-type"] ?? "(none)"} is not accepted here`);
    case "FST_ERR_CTP_BODY_TOO_LARGE":
    case "FST_REQ_FILE_TOO_LARGE":
    case "FST_FILES_LIMIT":
      return new AppError("PAYLOAD_TOO_LARGE", err.message);
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_INVALID_MULTIPART_CONTENT_TYPE":
    case "FST_ERR_VALIDATION":
      return new AppError("BAD_REQUEST", err.message);
  }
  // Only Fastify's own errors carry a 4xx statusCode; ours without one are 500s below.
  if (err.statusCode === 400 && !err.code?.startsWith("FST_ERR_RESPONSE")) {
    return new AppError("BAD_REQUEST", err.message);
  }
  if (err.statusCode === 413) return new AppError("PAYLOAD_TOO_LARGE", err.message);
  if (err.statusCode === 415) return new AppError("UNSUPPORTED_MEDIA_TYPE", err.message);
  if (err.statusCode === 404) return new AppError("NOT_FOUND", err.message);
  return undefined;
}

/** One envelope for every error, the request id echoed in `x-request-id`. */
export const errorsPlugin = fp(async (app: FastifyInstance) => {
  app.addHook("onSend", async (req, reply) => {
    reply.header("x-request-id", req.id);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new AppError("NOT_FOUND", `no route for ${req.method} ${req.url.split("?")[0]}`)));
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const known = toAppError(err, req);
    if (known) {
      if (known.status >= 500) req.log.warn({ err: known }, "request failed");
      return sendError(reply, known);
    }
    req.log.error({ err }, "unexpected error");
    return sendError(reply, new AppError("INTERNAL", "internal error"));
  });
});

/**
 * The router's own refusals (a path segment past 100 characters, a malformed %-escape) in the envelope,
 * with the status Fastify gives them (Fastify's `frameworkErrors`).
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  const message = err.code === "FST_ERR_MAX_PARAM_LENGTH" ? "a path segment is longer than 100 characters" : "the URL is malformed";
  return reply.code(err.statusCode ?? 400).type("application/json").send(envelope(new AppError("BAD_REQUEST", message), req.id));
}

/** How long a refused connection keeps reading what its client still sends before it is cut. */
const LINGER_MS = 2_000;
const lingering = new WeakSet<Socket>();

/**
 * Requests Node's HTTP parser refuses before any route sees them (a request line and headers past
 * 16 KB, a malformed head, a request that took too long) in the envelope, with Node's status
 * (Fastify's `clientErrorHandler`). The connection then closes, but lingers: closing with the rest
 * of the request unread would make the kernel reset the connection, and a client still sending would
 * lose the answer (seen as EPIPE). So the answer goes with a FIN, what still arrives is dropped, and
 * the socket is cut after LINGER_MS, or at once when the client closes (nginx's lingering close).
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket) {
  if (err.code === "ECONNRESET" || socket.destroyed) return socket.destroy();
  if (lingering.has(socket)) return; // the parser refuses each piece that still arrives
  lingering.add(socket);
  const [status, reason, message] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large", "the request line and headers are larger than 16 KB"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", "the request took too long to arrive"]
        : [400, "Bad Request", "the request is not valid HTTP"];
  if (!socket.writable) return socket.destroy();
  const body = JSON.stringify(envelope(new AppError("BAD_REQUEST", message), randomUUID()));
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const cut = setTimeout(() => socket.destroy(), LINGER_MS);
  socket.once("close", () => clearTimeout(cut));
  socket.resume();
}
