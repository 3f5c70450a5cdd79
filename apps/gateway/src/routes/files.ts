import { AppError, CreateUploadBody, UploadTicket, DownloadUrl, DownloadUrlQuery, FileObject, ListFilesQuery, Uuid, page, tierLimits, type ErrorEnvelope, IdParams } from "@cutroom/contracts";
import { toAppError, type RpcClient, type StorageReplicas } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";
import { authErrors, bodyErrors, errorResponses } from "../plugins/openapi.ts";
import { noStore } from "../plugins/security-headers.ts";
import { BodyError, readAll, requestStorage } from "../storage-http.ts";
import { fileImportRoutes } from "./file-imports.ts";

const FileReply = z.object({ file: FileObject });
const MultipartUpload = z.object({
  project_id: Uuid.optional().describe("a project to file it under; send this field before the file part"),
  file: z.file().describe("the bytes; a generic part type (application/octet-stream) is replaced by the type the bytes show"),
});

export async function fileRoutes(base: FastifyInstance, { rpc, storage }: { rpc: RpcClient; storage: StorageReplicas }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["files"];
  app.addHook("onRequest", app.authenticate);

  app.post(
    "/uploads",
    {
      schema: {
        tags,
        operationId: "createUpload",
        summary: "Start a signed upload: a URL to PUT the bytes to",
        description: "Step 1 of a signed upload: PUT the bytes to upload_url with the given headers, then confirm.",
        body: CreateUploadBody,
        response: { 201: UploadTicket, ...errorResponses(...authErrors, ...bodyErrors, 404) },
      },
      onSend: noStore,
    },
    async (req, reply) => {
      const max_bytes = tierLimits[req.caller!.tier].maxFileBytes;
      await requireProject(rpc, req.body.project_id, callCtx(req));
      reply.code(201);
      return rpc.call("storage", "createUpload", { ...req.body, max_bytes }, callCtx(req));
    },
  );

  app.post(
    "/uploads/:id/confirm",
    {
      schema: {
        tags,
        operationId: "confirmUpload",
        summary: "Finish a signed upload once the bytes are PUT",
        description: "Checks the uploaded size and the real content type from the bytes.",
        params: IdParams,
        response: { 200: FileReply, ...errorResponses(...authErrors, 404, 409, 413, 415, 422) },
      },
    },
    async (req) => ({ file: await rpc.call("storage", "confirmUpload", { file_id: req.params.id }, callCtx(req)) }),
  );

  // Streams the file part straight through to storage-service: never held whole in memory.
  app.post(
    "/files",
    {
      schema: {
        tags,
        operationId: "uploadFile",
        summary: "Upload a file in one multipart request",
        description: "multipart/form-data with one `file` part (and an optional `project_id` field before it), streamed to storage.",
        consumes: ["multipart/form-data"],
        body: MultipartUpload,
        response: { 201: FileReply, ...errorResponses(...authErrors, 400, 404, 413, 415, 422) },
      },
      // The parts are streamed by the handler, never parsed up front: the body schema only documents them.
      validatorCompiler: () => () => true,
    },
    async (req, reply) => {
      const max_bytes = tierLimits[req.caller!.tier].maxFileBytes;
      // One byte past the limit gets through, so storage (which holds the limit too) sees a file too large
      // and refuses it whole: at exactly the limit, a cut-off file would look complete and be kept.
      const part = await req.file({ limits: { fileSize: max_bytes + 1, files: 1 } }).catch((err: Error & { statusCode?: number }) => {
        // busboy's parse errors carry no code: a body that is not valid multipart is the client's mistake.
        if (err instanceof AppError || (err.statusCode && err.statusCode !== 500)) throw err;
        throw new AppError("BAD_REQUEST", `malformed multipart body: ${err.message}`);
      });
      if (!part) throw new AppError("BAD_REQUEST", "multipart body has no file part");
      const projectField = part.fields.project_id as { value?: unknown } | undefined;
      const project = Uuid.optional().safeParse(projectField?.value || undefined);
      if (!project.success) throw new AppError("INVALID_INPUT", "project_id must be a UUID", { fields: [{ path: "project_id", message: "must be a UUID" }] });
      const project_id = project.data;
      await requireProject(rpc, project_id, callCtx(req));
      const ingest = await rpc.call(
        "storage",
        "createIngest",
        { filename: part.filename || "upload", content_type: part.mimetype || "application/octet-stream", project_id, max_bytes },
        callCtx(req),
      );
      const { res, sentAll, abandon } = await requestStorage(storage, ingest.ingest_url, {
        method: "PUT",
        headers: { "content-type": "application/octet-stream", "x-request-id": req.id },
        body: part.file,
        log: req.log,
      }).catch((err: unknown) => {
        // busboy fails the part when the body ends before it does (no closing boundary) or breaks mid-part.
        if (err instanceof BodyError) throw new AppError("BAD_REQUEST", `malformed multipart body: ${err.message}`);
        throw err;
      });
      const text = (await readAll(res)).toString();
      if (!sentAll) abandon();
      const body = safeJson(text) as { error?: ErrorEnvelope["error"] } | undefined;
      if (res.statusCode !== 201) throw body?.error ? toAppError(body.error) : new AppError("INTERNAL", `storage answered ${res.statusCode}`);
      const file = FileObject.safeParse(body);
      if (!file.success) throw new AppError("INTERNAL", "malformed reply from storage ingest");
      reply.code(201);
      return { file: file.data };
    },
  );

  app.get(
    "/files",
    {
      schema: {
        tags,
        operationId: "listFiles",
        summary: "The caller's ready files, newest first",
        description:
          "Filters: `folder`, `kind` (image, video, audio, other), `category` (output files: `images`, `videos`, `audio` are outputs of that kind that are not final; `final` are the outputs of a pipeline run's last stage, set when the run succeeds, such as a storyboard's composed video), `project_id`. `include=url` adds to each file `download`, a signed URL valid for an hour. Unknown values are 422.",
        querystring: ListFilesQuery,
        response: { 200: page(FileObject), ...errorResponses(...authErrors, 422) },
      },
      onSend: noStore,
    },
    async (req) => rpc.call("storage", "listFiles", req.query, callCtx(req)),
  );

  app.get("/files/:id", { schema: { tags, operationId: "getFile", summary: "One file", params: IdParams, response: { 200: FileReply, ...errorResponses(...authErrors, 404, 422) } } }, async (req) => ({
    file: await rpc.call("storage", "getFile", { file_id: req.params.id }, callCtx(req)),
  }));

  app.get(
    "/files/:id/download-url",
    {
      schema: {
        tags,
        operationId: "getFileDownloadUrl",
        summary: "A signed URL to download a file's bytes",
        description: "`expires_in`: seconds the URL stays valid, 60 to 604800 (7 days), 3600 by default; anything else is 422.",
        params: IdParams,
        querystring: DownloadUrlQuery,
        response: { 200: DownloadUrl, ...errorResponses(...authErrors, 404, 409, 422) },
      },
      onSend: noStore,
    },
    async (req) => rpc.call("storage", "downloadUrl", { file_id: req.params.id, expires_in: req.query.expires_in }, callCtx(req)),
  );

  await fileImportRoutes(app, { rpc });

  app.delete("/files/:id", { schema: { tags, operationId: "deleteFile", summary: "Delete a file and its bytes", params: IdParams, response: { 204: z.null(), ...errorResponses(...authErrors, 404, 422) } } }, async (req, reply) => {
    await rpc.call("storage", "deleteFile", { file_id: req.params.id }, callCtx(req));
    return reply.code(204).send(null);
  });
}

/**
 * An upload's project must be a live project of the caller (404 otherwise). The gateway alone starts
 * uploads (createUpload, createIngest), so the one check here covers both ways in.
 */
export async function requireProject(rpc: RpcClient, projectId: string | undefined, ctx: ReturnType<typeof callCtx>) {
  if (projectId) await rpc.call("job", "getProject", { project_id: projectId }, ctx);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
