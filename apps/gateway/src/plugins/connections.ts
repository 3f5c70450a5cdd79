import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import type { Socket } from "node:net";

// How long a connection closed after an early answer still takes the rest of the body, at most.
const LINGER_MS = 5000;

/**
 * An answer sent before the request body was read through (a refused token, storage refused a signed
 * PUT, a multipart file was too large, an upload broke) closes the connection: the rest of the body
 * would otherwise sit unread on it, and the client's next request would wait behind it until the
 * keep-alive timeout. The close lingers: the rest of the body is read and dropped (up to LINGER_MS)
 * before the socket goes, since closing with unread bytes resets the connection, and a client still
 * sending sees the reset (write EPIPE) instead of the answer.
 */
export const connectionsPlugin = fp(async (app: FastifyInstance) => {
  app.addHook("onSend", async (req, reply) => {
    if (req.raw.complete) return;
    reply.header("connection", "close");
    lingerOnClose(req.raw.socket);
  });
});

/** Node closes a `connection: close` answer's socket with destroySoon once it is written: this one half-closes and waits for the client's end instead. */
function lingerOnClose(socket: Socket | null) {
  if (!socket || socket.destroyed) return;
  socket.destroySoon = function lingeringClose(this: Socket) {
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once("close", () => clearTimeout(timer));
    // Flowing, so that the rest of the body is read (and dropped) rather than left in the kernel's buffer.
    this.resume();
  };
}
