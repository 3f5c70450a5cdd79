import { createServer, type IncomingMessage, type Server } from "node:http";
import type { ClientRequest } from "node:http";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { freePort } from "@cutroom/devstack";
import { createStorageReplicas, urlList } from "./storage-replicas.ts";

/** A replica that answers `status` with the body it received, and counts its requests. */
function replica(status = 200) {
  const seen: string[] = [];
  const server = createServer(async (req, res) => {
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(status).end(Buffer.concat(parts));
  });
  return { server, seen };
}

const listen = (server: Server) => new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));

/** Sends `body` (once the connection is up) and reads the answer. */
async function send(req: ClientRequest, body?: Readable): Promise<{ status: number; body: string }> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
    if (body) body.pipe(req);
    else req.end();
  });
  const parts: Buffer[] = [];
  for await (const part of res) parts.push(part as Buffer);
  return { status: res.statusCode!, body: Buffer.concat(parts).toString() };
}

describe("storage replicas", () => {
  const up = replica();
  const refusing = replica(403);
  let upUrl: string;
  let refusingUrl: string;
  let deadUrl: string;

  beforeAll(async () => {
    upUrl = `http://127.0.0.1:${await listen(up.server)}`;
    refusingUrl = `http://127.0.0.1:${await listen(refusing.server)}`;
    deadUrl = `http://127.0.0.1:${await freePort()}`;
  });
  afterAll(() => {
    up.server.close();
    refusing.server.close();
  });

  it("sends a request for a dead replica to the next one, with a body that can be read only once", async () => {
    const replicas = createStorageReplicas([deadUrl, upUrl]);
    const req = await replicas.connect(`${deadUrl}/storage/blob/tok`, { method: "PUT", headers: { "content-type": "application/octet-stream" } });
    expect(await send(req, Readable.from([Buffer.from("every "), Buffer.from("byte")]))).toEqual({ status: 200, body: "every byte" });
    expect(up.seen.at(-1)).toBe("PUT /storage/blob/tok");
  });

  it("passes over a replica that does not take the connection within the connect timeout", async () => {
    // TEST-NET-1: nothing answers there (a network without a route refuses at once, which fails over too).
    const replicas = createStorageReplicas(["http://192.0.2.1:8001", upUrl], { connectTimeoutMs: 300 });
    const started = Date.now();
    expect(await send(await replicas.connect("http://192.0.2.1:8001/storage/blob/slow", { method: "GET" }))).toMatchObject({ status: 200 });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("takes a replica's 4xx as the answer: the token is as good on every replica", async () => {
    const replicas = createStorageReplicas([refusingUrl, upUrl]);
    const before = up.seen.length;
    expect(await send(await replicas.connect(`${refusingUrl}/storage/blob/expired`, { method: "GET" }))).toMatchObject({ status: 403 });
    expect(up.seen.length).toBe(before);
  });

  it("fails with the connection's error when no replica takes it, and leaves other hosts' URLs alone", async () => {
    const replicas = createStorageReplicas([deadUrl]);
    await expect(replicas.connect(`${deadUrl}/storage/blob/x`, { method: "GET" })).rejects.toMatchObject({ code: "ECONNREFUSED" });
    // An S3 URL (or any other host) has no replica to go to.
    const other = createStorageReplicas([upUrl]);
    await expect(other.connect(`${deadUrl}/bucket/key`, { method: "GET" })).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("reads one URL or a comma-separated list", () => {
    const Urls = z.string().transform(urlList);
    expect(Urls.parse("http://a:1/")).toEqual(["http://a:1"]);
    expect(Urls.parse("http://a:1, https://b:2")).toEqual(["http://a:1", "https://b:2"]);
    expect(Urls.safeParse("http://a:1,ftp://b").success).toBe(false);
    expect(Urls.safeParse(" , ").success).toBe(false);
  });
});
