// The bare upload server the upload-memory benchmark measures the gateway and storage-service
// against, in a process of its own as they are: a node:http server that streams any request's body
// to the file named by its first argument, then answers the bytes it wrote. No auth, no records, no
// checks. Tells the parent its port over IPC.
import { createWriteStream } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";

// The parent going away (even killed) ends the peer too.
process.on("disconnect", () => process.exit(0));

const path = process.argv[2];
if (!path) throw new Error("usage: peer-upload.ts <file to write>");

const server = createServer((req, res) => {
  const file = createWriteStream(path);
  pipeline(req, file).then(
    () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ bytes: file.bytesWritten })),
    (err: Error) => res.writeHead(500).end(err.message),
  );
});
server.listen(0, "127.0.0.1", () => {
  process.send!({ port: (server.address() as AddressInfo).port }, undefined, undefined, (err) => err && process.exit(0));
});
