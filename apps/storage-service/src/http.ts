import cors from "@fastify/cors";
import { randomUUID } from "node:crypto";
import { PassThrough } from "node:stream";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { AppError, errorStatus, type ErrorCode, type ErrorEnvelope } from "@cutroom/contracts";
import { SMALL_FILE_BYTES, type Logger } from "@cutroom/runtime";
import type { IngestReceiver, OutputReceiver, SignedPutReceiver } from "./app.ts";
import type { createUploadReceivers } from "./resumable.ts";
import { contentDisposition } from "./drivers/driver.ts";
import type { FsDriver } from "./drivers/fs-driver.ts";

type Routes = (app: FastifyInstance) => void;

/**
 * The data plane: bytes in and out over HTTP, authorised only by signed tokens in the path.
 * Bodies are never parsed or buffered; each route streams `request.raw` itself. Browsers reach
 * signed URLs from the allowed `corsOrigins` (any by default: the token in the path is the only credential).
 */
export function buildHttp(log: Logger, routes: Routes[], { corsOrigins = "*" }: { corsOrigins?: "*" | string[] } = {}): FastifyInstance {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    // Tokens carry their claims (a filename among them), so they are longer than fastify's 100 characters.
    routerOptions: { maxParamLength: 4096 },
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));
  // Registered before the routes, so its hook covers them; a download's name and range are readable by the page.
  app.register(cors, {
    origin: corsOrigins,
    methods: ["GET", "HEAD", "PUT"],
    exposedHeaders: ["content-disposition", "content-range", "accept-ranges", "content-length", "x-request-id"],
    maxAge: 600,
  });

  app.setErrorHandler((err, req, reply) => {
    const fastifyStatus = (err as { statusCode?: number }).statusCode;
    const error =
      err instanceof AppError
        ? err
        : fastifyStatus && fastifyStatus < 500
          ? new AppError(codeFor(fastifyStatus), (err as Error).message)
          : undefined;
    if (!error) req.log.error({ err, request_id: req.id }, "request failed");
    const body: ErrorEnvelope = {
      error: { code: error?.code ?? "INTERNAL", message: error?.message ?? "internal error", details: error?.details, request_id: req.id },
    };
    // The client may still be sending: discard the rest, so it can read this answer.
    if (!req.raw.readableEnded) req.raw.resume();
    return reply.status(error?.status ?? 500).send(body);
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: "NOT_FOUND", message: `no route ${req.method} ${req.url.split("/").slice(0, 3).join("/")}`, request_id: req.id } }),
  );

  for (const register of routes) register(app);
  return app;
}

/** The fs driver's signed URLs: `PUT` stores an upload (once per ticket, see `receive`), `GET` serves a download (with single byte ranges). */
export const blobRoutes =
  (driver: FsDriver, receive: SignedPutReceiver): Routes =>
  (app) => {
    app.put<{ Params: { token: string } }>("/storage/blob/:token", async (req, reply) => {
      const claims = driver.verify(req.params.token, "put");
      const type = req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
      if (claims.ct && type !== claims.ct) throw new AppError("FORBIDDEN", `content-type must be ${claims.ct}, as signed`);
      const maxBytes = claims.max ?? Number.POSITIVE_INFINITY;
      const declared = contentLength(req);
      if (declared !== undefined && declared > maxBytes) {
        throw new AppError("PAYLOAD_TOO_LARGE", `the body is larger than the signed ${maxBytes} bytes`, { size: declared, max_bytes: maxBytes });
      }
      const size = await receive(claims.key, bodyOf(req), maxBytes);
      return reply.status(200).send({ size });
    });

    app.get<{ Params: { token: string } }>("/storage/blob/:token", async (req, reply) => {
      const claims = driver.verify(req.params.token, "get");
      const object = await driver.readIfSmall(claims.key, SMALL_FILE_BYTES);
      if (!object) throw new AppError("NOT_FOUND", "object not found");
      const { size, bytes } = object;
      reply.header("content-type", claims.ct ?? "application/octet-stream");
      reply.header("content-disposition", contentDisposition(claims.fn ?? claims.key.split("/").pop()!));
      reply.header("accept-ranges", "bytes");
      const range = parseRange(req.headers.range, size);
      if (range === "unsatisfiable") {
        // The envelope is JSON, not the object's type (which fastify would refuse to send an object as: a 500).
        reply.removeHeader("content-disposition");
        return reply.status(416).header("content-range", `bytes */${size}`).type("application/json; charset=utf-8").send({ error: { code: "BAD_REQUEST", message: "range not satisfiable", request_id: req.id } });
      }
      if (range) {
        reply.status(206).header("content-range", `bytes ${range.start}-${range.end}/${size}`).header("content-length", range.end - range.start + 1);
        return reply.send(bytes ? bytes.subarray(range.start, range.end + 1) : driver.openRead(claims.key, range));
      }
      reply.header("content-length", size);
      return reply.send(bytes ?? driver.openRead(claims.key));
    });
  };

/** A job's outputs, each stored and recorded by its PUT (ADR 033); the answer is the ready file. */
export const outputRoutes =
  (receive: OutputReceiver): Routes =>
  (app) => {
    app.put<{ Params: { token: string }; Querystring: { filename?: string } }>("/storage/output/:token", async (req, reply) => {
      const filename = req.query.filename;
      if (!filename || filename.length > 1024) throw new AppError("BAD_REQUEST", "the upload needs a filename of 1 to 1024 characters");
      const type = req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
      if (!type) throw new AppError("BAD_REQUEST", "the upload needs a content-type");
      const file = await receive(req.params.token, filename, type, bodyOf(req), contentLength(req));
      return reply.status(200).send(file);
    });
  };

/** The gateway streams multipart uploads of unknown length here; the answer is the confirmed file. */
export const ingestRoutes =
  (ingest: IngestReceiver): Routes =>
  (app) => {
    app.put<{ Params: { token: string } }>("/storage/ingest/:token", async (req, reply) => {
      const file = await ingest(req.params.token, bodyOf(req), contentLength(req));
      return reply.status(201).send(file);
    });
  };

/** Resumable uploads' bytes (ADR 030), from the gateway: chunks, complete, tus PATCHes; the token names the upload. */
export const uploadRoutes =
  (receive: ReturnType<typeof createUploadReceivers>): Routes =>
  (app) => {
    app.put<{ Params: { token: string; index: string }; Querystring: { sha256?: string } }>("/storage/uploads/:token/chunks/:index", async (req, reply) =>
      receive.chunk(req.params.token, Number(req.params.index), uploadBodyOf(req, reply), req.query.sha256 || undefined),
    );
    app.post<{ Params: { token: string }; Querystring: { sha256?: string } }>("/storage/uploads/:token/complete", async (req) => {
      req.raw.resume();
      return receive.complete(req.params.token, req.query.sha256 || undefined);
    });
    app.patch<{ Params: { token: string } }>("/storage/uploads/:token/tus", async (req, reply) => {
      const offset = Number(req.headers["upload-offset"]);
      if (!Number.isSafeInteger(offset) || offset < 0) throw new AppError("BAD_REQUEST", "Upload-Offset must be a non-negative integer");
      const checksum = parseChecksum(req.headers["upload-checksum"]);
      return receive.patch(req.params.token, offset, uploadBodyOf(req, reply), checksum);
    });
  };

/**
 * As bodyOf, for receivers that may refuse before reading (unknown upload, wrong offset). What is left
 * unread once the answer is out is drained: else the paused body holds the kept-alive connection, and
 * the gateway's next request on it would wait forever. A caller that drops the connection mid-body
 * fails only a reader, if any.
 */
function uploadBodyOf(req: FastifyRequest, reply: FastifyReply): PassThrough {
  const body = bodyOf(req);
  body.on("error", () => {});
  reply.raw.once("finish", () => body.resume());
  return body;
}

/** tus's `Upload-Checksum: <algorithm> <base64 digest>`, for the algorithms we take (sha1, sha256). */
function parseChecksum(header: string | string[] | undefined): { algorithm: "sha256" | "sha1"; digest: string } | undefined {
  if (header === undefined) return undefined;
  const [algorithm, digest] = String(header).trim().split(/\s+/);
  if ((algorithm !== "sha256" && algorithm !== "sha1") || !digest) throw new AppError("BAD_REQUEST", "Upload-Checksum must be `sha256 <base64>` or `sha1 <base64>`", { algorithm: algorithm ?? null });
  return { algorithm, digest };
}

/**
 * The request body as a stream of its own: a driver that fails destroys this one, not the
 * socket, so the error answer can still reach the client. A client that goes away mid-body
 * fails it, so the driver drops what it had rather than wait forever.
 */
function bodyOf(req: FastifyRequest): PassThrough {
  const body = new PassThrough();
  req.raw.pipe(body);
  body.once("close", () => req.raw.unpipe(body));
  req.raw.once("close", () => {
    if (!req.raw.complete) body.destroy(new AppError("BAD_REQUEST", "the upload was interrupted"));
  });
  return body;
}

function contentLength(req: FastifyRequest): number | undefined {
  const raw = req.headers["content-length"];
  return raw === undefined ? undefined : Number(raw);
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; anything else is served whole. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | undefined {
  const m = header?.match(/^bytes=(\d*)-(\d*)$/);
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  const [start, end] = m[1] === "" ? [Math.max(0, size - Number(m[2])), size - 1] : [Number(m[1]), m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1)];
  return start > end || start >= size ? "unsatisfiable" : { start, end };
}

function codeFor(status: number): ErrorCode {
  const match = (Object.entries(errorStatus) as Array<[ErrorCode, number]>).find(([, s]) => s === status);
  return match?.[0] ?? "BAD_REQUEST";
}
