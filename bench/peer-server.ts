// The bare `ws` server the WebSocket benchmarks measure the gateway against, in a process of its
// own as the gateway is. A client on /jobs/<id> gets the messages whose `job_id` is <id>; a client
// on any other path gets every message. Messages arrive from the bench on /publish. Tells the
// parent its port over IPC.
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

// The parent going away (even killed) ends the peer too.
process.on("disconnect", () => process.exit(0));

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
const everything = new Set<WebSocket>();
const byJob = new Map<string, Set<WebSocket>>();
wss.on("connection", (socket, req) => {
  const url = req.url ?? "/";
  if (url === "/publish") {
    socket.on("message", (data) => {
      const text = data.toString();
      for (const client of everything) client.send(text);
      const jobId = (JSON.parse(text) as { job_id?: string }).job_id;
      for (const client of (jobId && byJob.get(jobId)) || []) client.send(text);
    });
    return;
  }
  const jobId = url.startsWith("/jobs/") ? url.slice("/jobs/".length) : undefined;
  const set = jobId ? (byJob.get(jobId) ?? byJob.set(jobId, new Set()).get(jobId)!) : everything;
  set.add(socket);
  socket.once("close", () => set.delete(socket));
});
await new Promise((resolve) => wss.once("listening", resolve));
process.send!({ port: (wss.address() as AddressInfo).port }, undefined, undefined, (err) => err && process.exit(0));
