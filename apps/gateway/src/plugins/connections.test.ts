import Fastify from "fastify";
import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";
import { connectionsPlugin } from "./connections.ts";

/** A server that refuses every request before reading its body, as a missing or wrong token is refused. */
async function refusingServer() {
  const app = Fastify();
  await app.register(connectionsPlugin);
  app.addHook("onRequest", async (_req, reply) => reply.code(401).send({ error: "refused" }));
  app.post("/x", async () => ({}));
  await app.listen({ port: 0, host: "127.0.0.1" });
  return app;
}

/**
 * A client in a process of its own (so that it can be busy while the server answers): it sends the
 * head and a first part of a large body, is held up for a moment without reading, then sends the rest.
 * It prints the status it got, or the error.
 */
const busyClient = `
const { request } = require("node:http");
const [port, size] = process.argv.slice(1).map(Number);
let answered = false;
const req = request({ port, host: "127.0.0.1", path: "/x", method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": String(size) } }, (res) => {
  answered = true;
  res.resume();
  res.on("end", () => console.log(res.statusCode));
});
req.on("error", (err) => { if (!answered) console.log("no answer: " + err.message); });
req.on("socket", (socket) => socket.on("connect", () => {
  const busy = (ms) => { const until = Date.now() + ms; while (Date.now() < until) {} };
  req.write("x".repeat(65536));
  busy(300);
  req.write("x".repeat(65536));
  busy(100);
  req.end("x".repeat(size - 2 * 65536));
}));`;

function sendLate(port: number, bodyBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["-e", busyClient, String(port), String(bodyBytes)], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
  });
}

describe("connections", () => {
  it("answers a request refused before its body was read, though the client sends the rest before reading: the answer arrives, then the connection closes", async () => {
    const app = await refusingServer();
    try {
      const { port } = app.server.address() as { port: number };
      for (let i = 0; i < 5; i++) expect(await sendLate(port, 2 * 1024 * 1024)).toBe("401");
    } finally {
      await app.close();
    }
  });
});
