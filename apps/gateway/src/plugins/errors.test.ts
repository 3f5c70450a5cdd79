import Fastify from "fastify";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientErrorHandler, errorsPlugin, frameworkErrors } from "./errors.ts";

const app = Fastify({ clientErrorHandler, frameworkErrors });
let port = 0;
beforeAll(async () => {
  await app.register(errorsPlugin);
  app.get("/files/:id", async (req) => req.params);
  await app.listen({ port: 0, host: "127.0.0.1" });
  port = (app.server.address() as { port: number }).port;
});
afterAll(() => app.close());

/** An HTTP answer as read off the socket: its status, and its body as JSON (null if none came). */
function parsed(answer: string): { status: number; body: any } {
  const [top, body] = answer.split("\r\n\r\n");
  return { status: Number(top?.split(" ")[1]), body: body ? JSON.parse(body) : null };
}

/** Sends `head` as it is and resolves with the whole answer (or what came of it before the connection broke). */
function raw(head: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(head));
    let answer = "";
    socket.on("data", (d) => {
      answer += d.toString();
    });
    socket.on("close", () => resolve(parsed(answer)));
    socket.on("error", () => {});
  });
}

/**
 * Sends `head` in 64 KiB pieces, 10 ms apart, and reads only once all of it is sent, as a client
 * that writes its request and then reads does; resolves with the answer, or with what broke.
 */
function slowThenRead(head: string): Promise<{ status: number; body: any } | string> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.pause();
    let answer = "";
    socket.on("data", (d) => {
      answer += d.toString();
    });
    socket.on("error", (err) => resolve(`no answer: ${err.message}`));
    socket.on("close", () => {
      const got = parsed(answer);
      resolve(got.body === null ? `no answer: "${answer}"` : got);
    });
    const send = async () => {
      for (let at = 0; at < head.length; at += 64 * 1024) {
        await new Promise<void>((sent, failed) => socket.write(head.slice(at, at + 64 * 1024), (err) => (err ? failed(err) : sent())));
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    socket.on("connect", () => send().then(() => socket.resume(), () => {}));
  });
}

const envelope = (code: string) => ({ error: { code, message: expect.any(String), request_id: expect.any(String) } });

describe("errors refused before a route runs", () => {
  it("answers a request line and headers past 16 KB with 431 in the envelope", async () => {
    const res = await raw(`GET /files/1?q=${"x".repeat(20_000)} HTTP/1.1\r\nhost: x\r\n\r\n`);
    expect(res).toEqual({ status: 431, body: envelope("BAD_REQUEST") });
  });

  it("lets a client still sending a 1 MiB request line read its 431 (the rest is read and dropped, not reset)", async () => {
    // Closing at once with the rest unread makes the kernel reset the connection, and the client
    // loses the answer it was sent; seen as "write EPIPE" with no status.
    const answer = await slowThenRead(`GET /files/1?q=${"x".repeat(1024 * 1024)} HTTP/1.1\r\nhost: x\r\n\r\n`);
    expect(answer).toEqual({ status: 431, body: envelope("BAD_REQUEST") });
  });

  it("answers a head that is not HTTP with 400 in the envelope", async () => {
    expect(await raw("NOT HTTP AT ALL\r\n\r\n")).toEqual({ status: 400, body: envelope("BAD_REQUEST") });
  });

  it("answers a path parameter past 100 characters with 414, and a malformed %-escape with 400, in the envelope", async () => {
    const long = await app.inject({ method: "GET", url: `/files/${"x".repeat(101)}` });
    expect(long.statusCode).toBe(414);
    expect(long.json()).toEqual(envelope("BAD_REQUEST"));
    const malformed = await app.inject({ method: "GET", url: "/files/%zz" });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toEqual(envelope("BAD_REQUEST"));
  });
});
