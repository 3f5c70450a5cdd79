import { AppError } from "@cutroom/contracts";
import type { FastifyInstance } from "fastify";
import { Readable } from "node:stream";

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"]);

/**
 * Forwards /storage/* to storage-service's data plane, streaming both ways, so that signed
 * URLs of the fs driver are reachable on the gateway's one public port.
 */
export async function storageProxy(app: FastifyInstance, { target }: { target: string }) {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));

  app.route({
    method: ["GET", "PUT", "HEAD"],
    url: "/storage/*",
    schema: { hide: true },
    handler: async (req, reply) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && !HOP_BY_HOP.has(k)) headers[k] = v;
      if (req.headers["content-length"]) headers["content-length"] = req.headers["content-length"];
      const hasBody = req.method === "PUT";
      const res = await fetch(target + req.url, {
        method: req.method,
        headers,
        body: hasBody ? (Readable.toWeb(req.raw) as ReadableStream) : undefined,
        duplex: hasBody ? "half" : undefined,
      } as RequestInit).catch((err: Error) => {
        throw new AppError("SERVICE_UNAVAILABLE", "storage service is unavailable", { reason: err.message });
      });
      reply.code(res.status);
      res.headers.forEach((v, k) => {
        if (!HOP_BY_HOP.has(k) && k !== "x-request-id") reply.header(k, v);
      });
      if (res.headers.get("content-length")) reply.header("content-length", res.headers.get("content-length")!);
      return reply.send(res.body ? Readable.fromWeb(res.body as never) : null);
    },
  });
}
