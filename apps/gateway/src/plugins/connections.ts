import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

/**
 * An answer sent before the request body was read through (storage refused a signed PUT, a multipart
 * file was too large, an upload broke) closes the connection: the rest of the body would otherwise sit
 * unread on it, and the client's next request would wait behind it until the keep-alive timeout.
 */
export const connectionsPlugin = fp(async (app: FastifyInstance) => {
  app.addHook("onSend", async (req, reply) => {
    if (!req.raw.complete) reply.header("connection", "close");
  });
});
