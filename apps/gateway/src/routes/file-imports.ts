import { FileImport, IdParams, ImportFileBody, tierLimits } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { callCtx } from "../context.ts";
import { authErrors, bodyErrors, errorResponses } from "../plugins/openapi.ts";
import { requireProject } from "./files.ts";

const importDescription = `Fetches an image, video or audio file from a public http(s) URL into storage, as a job: the answer (202)
comes at once with the import's id and the file id it becomes; follow it with GET /imports/{id} (or GET /files/{file_id}).
Refused at once (422 IMPORT_URL_REFUSED, details.reason): a scheme other than http(s), credentials in the URL, a host that
resolves to a private, loopback, link-local or otherwise non-public address, or not at all. The fetch checks the addresses it connects to
again (DNS rebinding) and after each redirect (5 at most); an import that fails ends \`failed\` with \`error\` {code, message,
status}: IMPORT_URL_REFUSED (a redirect to a private address), PAYLOAD_TOO_LARGE (past the tier's file limit, as for uploads,
counted as the bytes arrive), UNSUPPORTED_MEDIA_TYPE (not media, or not readable), IMPORT_FETCH_FAILED
(the server's error status, no connection, the timeout).`;

/** POST /files/import and its status (storage-service fetches in the background: import.ts there). */
export async function fileImportRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["files"];

  app.post(
    "/files/import",
    {
      schema: {
        tags,
        operationId: "importFile",
        summary: "Import a file from a public URL (in the background)",
        description: importDescription,
        body: ImportFileBody,
        response: { 202: FileImport, ...errorResponses(...authErrors, ...bodyErrors, 404) },
      },
    },
    async (req, reply) => {
      const max_bytes = tierLimits[req.caller!.tier].maxFileBytes;
      await requireProject(rpc, req.body.project_id, callCtx(req));
      const started = await rpc.call("storage", "startImport", { ...req.body, max_bytes }, callCtx(req));
      return reply.code(202).header("location", `/api/v1/imports/${started.id}`).send(started);
    },
  );

  app.get(
    // Not /files/import/{id}: it would be ambiguous with /files/{id}/download-url for client generators.
    "/imports/:id",
    {
      schema: {
        tags,
        operationId: "getFileImport",
        summary: "Where an import stands: running, succeeded (with the file) or failed (with the reason)",
        params: IdParams,
        response: { 200: FileImport, ...errorResponses(...authErrors, 404, 422) },
      },
    },
    async (req) => rpc.call("storage", "getImport", { import_id: req.params.id }, callCtx(req)),
  );
}
