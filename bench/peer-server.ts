// The peers the benchmarks measure Cutroom against, each in a process of its own as the gateway is:
//   fastify  answers POST /api/v1/jobs with a hello world (the same request the gateway gets);
//   ws       sends every message that arrives on /publish to every other connected client.
// Tells the parent its port over IPC.
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import { WebSocketServer } from "ws";

// The parent going away (even killed) ends the peer too.
process.on("disconnect", () => process.exit(0));
const tellPort = (port: number) => process.send!({ port }, undefined, undefined, (err) => err && process.exit(0));

const kind = process.argv[2];
if (kind === "fastify") {
  const app = Fastify();
  app.post("/api/v1/jobs", async (_req, reply) => {
    reply.code(202);
    return { hello: "world" };
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  tellPort((app.server.address() as AddressInfo).port);
} else if (kind === "ws") {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  wss.on("connection", (socket, req) => {
    if (req.url !== "/publish") return;
    socket.on("message", (data) => {
      for (const client of wss.clients) if (client !== socket) client.send(data, { binary: false });
    });
  });
  await new Promise((resolve) => wss.once("listening", resolve));
  tellPort((wss.address() as AddressInfo).port);
} else {
  throw new Error(`unknown peer ${kind}: expected fastify or ws`);
}
