import { AppError, CreateUploadBody, UploadTicket, DownloadUrl, FileObject, ListFilesQuery, Uuid, page, tierLimits, type ErrorEnvelope, IdParams } from "@cutroom/contracts";
import { toAppError, type RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";

const FileReply = z.object({ file: FileObject });

export async function fileRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["files"];
  app.addHook("onRequest", app.authenticate);

  app.post(
    "/uploads",
    {
      schema: {
        tags,
        description: "Step 1 of a signed upload: PUT the bytes to upload_url with the given headers, then confirm.",
        body: CreateUploadBody,
        response: { 201: UploadTicket },
      },
    },
    async (req, reply) => {
      const max_bytes = tierLimits[req.caller!.tier].maxFileBytes;
      reply.code(201);
      return rpc.call("storage", "createUpload", { ...req.body, max_bytes }, callCtx(req));
    },
  );

  app.post(
    "/uploads/:id/confirm",
    { schema: { tags, description: "Checks the uploaded size and the real content type from the bytes.", params: IdParams, response: { 200: FileReply } } },
    async (req) => ({ file: await rpc.call("storage", "confirmUpload", { file_id: req.params.id }, callCtx(req)) }),
  );

  // Streams the file part straight through to storage-service: never held whole in memory.
  app.post(
    "/files",
    { schema: { tags, description: "multipart/form-data with one `file` part (and optional `project_id` field before it)", consumes: ["multipart/form-data"], response: { 201: FileReply } } },
    async (req, reply) => {
      const max_bytes = tierLimits[req.caller!.tier].maxFileBytes;
      const part = await req.file({ limits: { fileSize: max_bytes, files: 1 } }).catch((err: Error & { statusCode?: number }) => {
        // busboy's parse errors carry no code: a body that is not valid multipart is the client's mistake.
        if (err instanceof AppError || (err.statusCode && err.statusCode !== 500)) throw err;
        throw new AppError("BAD_REQUEST", `malformed multipart body: ${err.message}`);
      });
      if (!part) throw new AppError("BAD_REQUEST", "multipart body has no file part");
      const projectField = part.fields.project_id as { value?: unknown } | undefined;
      const project = Uuid.optional().safeParse(projectField?.value || undefined);
      if (!project.success) throw new AppError("INVALID_INPUT", "project_id must be a UUID", { fields: [{ path: "project_id", message: "must be a UUID" }] });
      const project_id = project.data;
      const ingest = await rpc.call(
        "storage",
        "createIngest",
        { filename: part.filename || "upload", content_type: part.mimetype || "application/octet-stream", project_id, max_bytes },
        callCtx(req),
      );
      const res = await fetch(ingest.ingest_url, {
        method: "PUT",
        body: part.file as unknown as ReadableStream,
        duplex: "half",
        headers: { "content-type": "application/octet-stream", "x-request-id": req.id },
      } as RequestInit).catch((err: Error) => {
        if (part.file.truncated) throw new AppError("PAYLOAD_TOO_LARGE", `file is larger than ${max_bytes} bytes`, { max_bytes });
        throw new AppError("SERVICE_UNAVAILABLE", "storage service is unavailable", { reason: err.message });
      });
      const body = (await res.json().catch(() => undefined)) as { error?: ErrorEnvelope["error"] } | undefined;
      if (part.file.truncated) throw new AppError("PAYLOAD_TOO_LARGE", `file is larger than ${max_bytes} bytes`, { max_bytes });
      if (!res.ok) throw body?.error ? toAppError(body.error) : new AppError("INTERNAL", `storage answered ${res.status}`);
      const file = FileObject.safeParse(body);
      if (!file.success) throw new AppError("INTERNAL", "malformed reply from storage ingest");
      reply.code(201);
      return { file: file.data };
    },
  );

  app.get("/files", { schema: { tags, querystring: ListFilesQuery, response: { 200: page(FileObject) } } }, async (req) =>
    rpc.call("storage", "listFiles", req.query, callCtx(req)),
  );

  app.get("/files/:id", { schema: { tags, params: IdParams, response: { 200: FileReply } } }, async (req) => ({
    file: await rpc.call("storage", "getFile", { file_id: req.params.id }, callCtx(req)),
  }));

  app.get("/files/:id/download-url", { schema: { tags, params: IdParams, response: { 200: DownloadUrl } } }, async (req) =>
    rpc.call("storage", "downloadUrl", { file_id: req.params.id }, callCtx(req)),
  );

  app.delete("/files/:id", { schema: { tags, params: IdParams, response: { 204: z.null() } } }, async (req, reply) => {
    await rpc.call("storage", "deleteFile", { file_id: req.params.id }, callCtx(req));
    return reply.code(204).send(null);
  });
}
