import {
  AppError,
  ChunkedUploadTicket,
  ChunkReceipt,
  CompleteChunkedUploadBody,
  CompletedUpload,
  InitChunkedUploadBody,
  ResumableUpload,
  Sha256Hex,
  Uuid,
  tierLimits,
  uploadChunkBytes,
  type ErrorEnvelope,
} from "@cutroom/contracts";
import { toAppError, type RpcClient, type StorageReplicas } from "@cutroom/runtime";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { Readable } from "node:stream";
import { z } from "zod";
import { callCtx } from "../context.ts";
import { authErrors, bodyErrors, errorResponses } from "../plugins/openapi.ts";
import { envelope } from "../plugins/errors.ts";
import { BodyError, readAll, requestStorage } from "../storage-http.ts";
import { requireProject } from "./files.ts";

const UploadParams = z.object({ upload_id: z.string().describe("the upload_id from init") });
const ChunkForm = z.object({
  chunk_index: z.coerce.number().int().min(0).describe("0-based; send this field before the chunk part (or as ?chunk_index=)"),
  checksum: Sha256Hex.optional().describe("the chunk's SHA-256 (hex), checked; a mismatch keeps nothing. Before the chunk part"),
  chunk: z.file().describe("the chunk's bytes: chunk_size bytes, the last chunk the rest"),
});

/** An unknown id is a missing upload, whatever its shape. */
function uploadIdOf(req: FastifyRequest): string {
  const given = (req.params as { upload_id?: string }).upload_id;
  const id = Uuid.safeParse(given);
  if (!id.success) throw new AppError("NOT_FOUND", "upload not found (unknown, expired or not yours)", { upload_id: given ?? null });
  return id.data;
}

/**
 * Resumable uploads (ADR 030): seed 004's chunked upload and tus 1.0. Records go over NATS to storage-service;
 * bytes stream over HTTP to its data plane, at a URL it signs for the upload once it has checked the owner.
 */
export async function uploadRoutes(base: FastifyInstance, deps: { rpc: RpcClient; storage: StorageReplicas }) {
  await base.register(chunkedRoutes, deps);
  await base.register(tusRoutes, { ...deps, prefix: "/tus" });
}

async function chunkedRoutes(base: FastifyInstance, { rpc, storage }: { rpc: RpcClient; storage: StorageReplicas }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["uploads"];
  app.addHook("onRequest", app.authenticate);

  app.post(
    "/chunked-upload/init",
    {
      schema: {
        tags,
        operationId: "initChunkedUpload",
        summary: "Start a chunked upload (seed 004): then send the chunks, in any order, and complete",
        description: `A file of up to the tier's file size limit (413 past it, with the numbers) in chunks of chunk_size (${uploadChunkBytes.min} to ${uploadChunkBytes.max} bytes). Unfinished uploads expire (expires_at).`,
        body: InitChunkedUploadBody,
        response: { 201: ChunkedUploadTicket, ...errorResponses(...authErrors, ...bodyErrors, 404) },
      },
    },
    async (req, reply) => {
      const max_bytes = tierLimits[req.caller!.tier].maxFileBytes;
      await requireProject(rpc, req.body.project_id, callCtx(req));
      const ticket = await rpc.call("storage", "createResumableUpload", { ...req.body, protocol: "chunked", max_bytes }, callCtx(req));
      reply.code(201);
      return ticket;
    },
  );

  app.post(
    "/chunked-upload/chunk/:upload_id",
    {
      schema: {
        tags,
        operationId: "uploadChunk",
        summary: "Send one chunk (multipart: chunk_index, optional checksum, then the chunk part)",
        description: "Idempotent: a chunk sent again replaces the earlier one. Chunks may go in parallel. A chunk of the wrong size is 422, a checksum that differs 422 CHECKSUM_MISMATCH; neither is kept.",
        consumes: ["multipart/form-data"],
        params: UploadParams,
        body: ChunkForm,
        response: { 200: ChunkReceipt, ...errorResponses(...authErrors, 400, 404, 409, 413, 422) },
      },
      // Streamed by the handler, never parsed up front: the body schema only documents it.
      validatorCompiler: () => () => true,
    },
    async (req) => {
      const uploadId = uploadIdOf(req);
      const part = await req.file({ limits: { fileSize: uploadChunkBytes.max + 1, files: 1 } }).catch((err: Error & { statusCode?: number }) => {
        if (err instanceof AppError || (err.statusCode && err.statusCode !== 500)) throw err;
        throw new AppError("BAD_REQUEST", `malformed multipart body: ${err.message}`);
      });
      if (!part) throw new AppError("BAD_REQUEST", "multipart body has no chunk part");
      const field = (name: string) => (part.fields[name] as { value?: unknown } | undefined)?.value;
      const query = req.query as { chunk_index?: string };
      const index = z.coerce.number().int().min(0).safeParse(field("chunk_index") ?? query.chunk_index);
      if (!index.success) {
        part.file.resume();
        throw new AppError("INVALID_INPUT", "chunk_index (a 0-based integer) must come before the chunk part, or as ?chunk_index=", { fields: [{ path: "chunk_index", message: "required before the chunk" }] });
      }
      const checksum = Sha256Hex.optional().safeParse(field("checksum") || field("sha256") || undefined);
      if (!checksum.success) {
        part.file.resume();
        throw new AppError("INVALID_INPUT", "checksum must be the chunk's SHA-256 as 64 hex digits", { fields: [{ path: "checksum", message: "must be 64 hex digits" }] });
      }
      const { url } = await rpc.call("storage", "resumableUploadUrl", { upload_id: uploadId }, callCtx(req));
      const target = `${url}/chunks/${index.data}${checksum.data ? `?sha256=${checksum.data}` : ""}`;
      return ChunkReceipt.parse(await forward(storage, req, target, { method: "PUT", body: part.file }));
    },
  );

  app.get(
    "/chunked-upload/:upload_id",
    {
      schema: {
        tags,
        operationId: "getChunkedUpload",
        summary: "Where an upload stands: the chunks received and missing, to resume after a crash",
        params: UploadParams,
        response: { 200: ResumableUpload, ...errorResponses(...authErrors, 404) },
      },
    },
    async (req) => rpc.call("storage", "getResumableUpload", { upload_id: uploadIdOf(req) }, callCtx(req)),
  );

  app.post(
    "/chunked-upload/complete/:upload_id",
    {
      schema: {
        tags,
        operationId: "completeChunkedUpload",
        summary: "Join the chunks into a file, checked as a signed upload's confirm is (size, real type)",
        description: "409 while chunks are missing (details.missing). The optional sha256 (or init's) is checked against the whole file.",
        params: UploadParams,
        body: CompleteChunkedUploadBody.optional(),
        response: { 200: CompletedUpload, ...errorResponses(...authErrors, 404, 409, 413, 415, 422) },
      },
    },
    async (req) => {
      const { url } = await rpc.call("storage", "resumableUploadUrl", { upload_id: uploadIdOf(req) }, callCtx(req));
      const sha256 = req.body?.sha256;
      return CompletedUpload.parse(await forward(storage, req, `${url}/complete${sha256 ? `?sha256=${sha256}` : ""}`, { method: "POST" }));
    },
  );

  app.delete(
    "/chunked-upload/:upload_id",
    { schema: { tags, operationId: "deleteChunkedUpload", summary: "Abandon an upload: its chunks are deleted", params: UploadParams, response: { 204: z.null(), ...errorResponses(...authErrors, 404) } } },
    async (req, reply) => {
      await rpc.call("storage", "deleteResumableUpload", { upload_id: uploadIdOf(req) }, callCtx(req));
      return reply.code(204).send(null);
    },
  );
}

const TUS_VERSION = "1.0.0";
/** What a browser's tus client must read (CORS). */
export const tusExposedHeaders = ["location", "upload-offset", "upload-length", "upload-expires", "tus-resumable", "tus-version", "tus-extension", "tus-max-size", "tus-checksum-algorithm", "cutroom-file-id"];
const tusHeaders = {
  "tus-version": TUS_VERSION,
  "tus-extension": "creation,termination,checksum,expiration",
  "tus-checksum-algorithm": "sha1,sha256",
};

/**
 * tus 1.0 (core, creation, termination, checksum, expiration) for tus-js-client and Uppy: the same
 * uploads as the chunked API underneath. A finished upload is a checked file: its id is in the
 * `Cutroom-File-Id` header of the last PATCH and of HEAD, and in `GET tus/{id}`.
 */
async function tusRoutes(app: FastifyInstance, { rpc, storage }: { rpc: RpcClient; storage: StorageReplicas }) {
  // PATCH bodies stream through untouched; a body of another type is refused by the handler (415).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));
  app.addHook("onSend", async (_req, reply) => {
    reply.header("tus-resumable", TUS_VERSION);
  });
  app.addHook("onRequest", async (req, reply) => {
    if (req.method === "OPTIONS") return;
    // GET tus/{id} is ours (the upload as JSON), not tus's: any client may read it.
    if (req.method !== "GET" && req.headers["tus-resumable"] !== TUS_VERSION) {
      return reply
        .code(412)
        .header("tus-version", TUS_VERSION)
        .send(envelope(new AppError("BAD_REQUEST", `Tus-Resumable must be ${TUS_VERSION}`), req.id));
    }
    await app.authenticate(req);
  });
  const schema = { tags: ["uploads"], hide: true };
  const expires = (iso: string) => new Date(iso).toUTCString();

  // A plain OPTIONS (tus discovery) is not a CORS preflight; a browser's preflight still gets CORS's headers, then these.
  app.options("/", { schema, config: { cors: { strictPreflight: false, preflightContinue: true } } }, async (_req, reply) => reply.code(204).headers({ ...tusHeaders, "tus-max-size": tierLimits.enterprise.maxFileBytes }).send());

  app.post("/", { schema }, async (req, reply) => {
    if (req.headers["upload-defer-length"] !== undefined) throw new AppError("BAD_REQUEST", "Upload-Defer-Length is not supported: send Upload-Length");
    const length = Number(req.headers["upload-length"]);
    if (req.headers["upload-length"] === undefined || !Number.isSafeInteger(length) || length < 1) throw new AppError("BAD_REQUEST", "Upload-Length must be a positive integer");
    const meta = parseMetadata(req.headers["upload-metadata"]);
    const body = InitChunkedUploadBody.omit({ chunk_size: true }).safeParse({
      filename: meta.filename ?? meta.name ?? "upload",
      file_type: meta.filetype ?? meta.type ?? meta.content_type ?? "application/octet-stream",
      total_size: length,
      sha256: meta.sha256,
      project_id: meta.project_id,
    });
    if (!body.success) throw new AppError("INVALID_INPUT", "Upload-Metadata is invalid", { fields: body.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) });
    const max_bytes = tierLimits[req.caller!.tier].maxFileBytes;
    await requireProject(rpc, body.data.project_id, callCtx(req));
    const ticket = await rpc.call("storage", "createResumableUpload", { ...body.data, protocol: "tus", max_bytes }, callCtx(req));
    return reply
      .code(201)
      .headers({ location: `/api/v1/tus/${ticket.upload_id}`, "upload-expires": expires(ticket.expires_at), "cache-control": "no-store" })
      .send();
  });

  // Before GET: Fastify would otherwise make GET's own HEAD route.
  app.head<{ Params: { upload_id: string } }>("/:upload_id", { schema }, async (req, reply) => {
    const upload = await rpc.call("storage", "getResumableUpload", { upload_id: uploadIdOf(req) }, callCtx(req));
    reply.headers({ "upload-offset": upload.status === "completed" ? upload.total_size : upload.offset, "upload-length": upload.total_size, "upload-expires": expires(upload.expires_at), "cache-control": "no-store" });
    if (upload.status === "completed") reply.header("cutroom-file-id", upload.file_id);
    return reply.code(200).send();
  });

  app.get<{ Params: { upload_id: string } }>("/:upload_id", { schema }, async (req, reply) => {
    reply.header("cache-control", "no-store");
    return rpc.call("storage", "getResumableUpload", { upload_id: uploadIdOf(req) }, callCtx(req));
  });

  app.patch<{ Params: { upload_id: string } }>("/:upload_id", { schema }, async (req, reply) => {
    const uploadId = uploadIdOf(req);
    if (req.headers["content-type"]?.split(";")[0]?.trim() !== "application/offset+octet-stream") {
      throw new AppError("UNSUPPORTED_MEDIA_TYPE", "a PATCH body must be Content-Type: application/offset+octet-stream");
    }
    const offset = req.headers["upload-offset"];
    if (offset === undefined || !/^\d+$/.test(String(offset))) throw new AppError("BAD_REQUEST", "Upload-Offset must be a non-negative integer");
    const { url, upload } = await rpc.call("storage", "resumableUploadUrl", { upload_id: uploadId }, callCtx(req));
    if (upload.protocol !== "tus") throw new AppError("NOT_FOUND", "no tus upload with this id", { upload_id: uploadId });
    const headers: Record<string, string> = { "upload-offset": String(offset) };
    if (req.headers["upload-checksum"]) headers["upload-checksum"] = String(req.headers["upload-checksum"]);
    let result: { offset: number; file?: { id: string } };
    try {
      result = (await forward(storage, req, `${url}/tus`, { method: "PATCH", body: req.raw, headers })) as typeof result;
    } catch (err) {
      // The checksum extension's own status for a body that does not match.
      if (err instanceof AppError && err.code === "CHECKSUM_MISMATCH") return reply.code(460).type("application/json").send(envelope(err, req.id));
      throw err;
    }
    reply.headers({ "upload-offset": result.offset, "upload-expires": expires(upload.expires_at) });
    if (result.file) reply.header("cutroom-file-id", result.file.id);
    return reply.code(204).send();
  });

  app.delete<{ Params: { upload_id: string } }>("/:upload_id", { schema }, async (req, reply) => {
    await rpc.call("storage", "deleteResumableUpload", { upload_id: uploadIdOf(req) }, callCtx(req));
    return reply.code(204).send();
  });
}

/** `Upload-Metadata: key base64,key2 base64`: the values decoded. */
function parseMetadata(header: string | string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const pair of String(header).split(",")) {
    const [key, value] = pair.trim().split(" ");
    if (key) out[key] = value ? Buffer.from(value, "base64").toString("utf8") : "";
  }
  return out;
}

/** A request to storage's data plane (a body streamed when given); its JSON answer, or its error envelope as our error. */
async function forward(
  storage: StorageReplicas,
  req: FastifyRequest,
  url: string,
  opts: { method: string; body?: Readable; headers?: Record<string, string> },
): Promise<unknown> {
  const { res, sentAll, abandon } = await requestStorage(storage, url, {
    method: opts.method,
    headers: { "content-type": "application/octet-stream", "x-request-id": req.id, ...opts.headers },
    body: opts.body,
    log: req.log,
  }).catch((err: unknown) => {
    if (err instanceof BodyError) throw new AppError("BAD_REQUEST", `the upload was interrupted: ${err.message}`);
    throw err;
  });
  const text = (await readAll(res)).toString();
  if (!sentAll) abandon();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (res.statusCode !== 200) {
    const error = (body as { error?: ErrorEnvelope["error"] } | undefined)?.error;
    throw error ? toAppError(error) : new AppError("INTERNAL", `storage answered ${res.statusCode}`);
  }
  return body;
}
