import { AppError } from "@cutroom/contracts";
import type { StorageReplicas } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { OutgoingHttpHeaders } from "node:http";
import { BodyError, readAll, requestStorage } from "../storage-http.ts";

// Hop-by-hop headers are this connection's own. `expect` too: Node has answered 100-continue already,
// and storage would wait for a body the client sends at once.
const NOT_FORWARDED = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "expect", "te", "trailer", "proxy-authorization", "proxy-connection"]);

/**
 * Forwards the fs driver's signed URLs (`/storage/blob/<token>`: GET, HEAD, PUT) to storage-service's
 * data plane, streaming both ways, so they are reachable on the gateway's one public port. Nothing
 * else of the data plane is: its ingest endpoint is for the gateway alone. Storage's answer (status,
 * envelope) goes back as it is, also when it refuses a PUT before the body is through. Every replica
 * serves every token, so one that is down is passed over for the next.
 */
export async function storageProxy(app: FastifyInstance, { storage }: { storage: StorageReplicas }) {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));

  app.route({
    method: ["GET", "PUT", "HEAD"],
    url: "/storage/blob/*",
    schema: { hide: true },
    handler: async (req, reply) => {
      // The router matches an absolute-form target (`GET http://host/storage/blob/…`) by its path, but only an
      // origin-form one appends to storage's address: anything else names no blob of ours.
      if (!req.url.startsWith("/storage/blob/")) throw new AppError("NOT_FOUND", `no route for ${req.method} ${req.url.split("?")[0]}`);
      const headers: OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !NOT_FORWARDED.has(k)) headers[k] = v;
      headers["x-request-id"] = req.id;
      const hasBody = req.method === "PUT";
      const { res, sentAll, abandon } = await requestStorage(storage, storage.bases[0] + req.url, { method: req.method, headers, body: hasBody ? req.raw : undefined, log: req.log }).catch(
        (err: unknown) => {
          if (err instanceof BodyError) throw new AppError("BAD_REQUEST", "the upload was interrupted");
          throw err;
        },
      );
      reply.code(res.statusCode ?? 502);
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !NOT_FORWARDED.has(k) && k !== "x-request-id") reply.header(k, v);
      if (!hasBody) return reply.send(req.method === "HEAD" ? undefined : res);
      // A PUT's answer is a small JSON body; read whole, so the connection to storage can be dropped
      // when it answered early (the rest of the client's body is then not read: see plugins/connections.ts).
      const body = await readAll(res);
      if (!sentAll) abandon();
      return reply.send(body);
    },
  });
}
