// OWASP API7:2023 Server Side Request Forgery. Cutroom fetches no URL a client gives: there is no
// import from a URL, job inputs name files by id, and the model provider's address is configuration.
// What remains are the places a client could still steer a server's request: the signed URLs the
// services build (whose host must not come from the request), the storage proxy (whose target must not
// come from the path), and media whose bytes name other resources (playlists, concat lists, SVG), which
// must never be followed. Each test listens on a local port standing for an internal service, and
// asserts nothing ever knocked.
import { createServer, request as httpRequest, type Server } from "node:http";
import { connect } from "node:net";
import { expectEnvelope } from "@cutroom/e2e/client";
import { makePng } from "@cutroom/e2e/media";
import { useStack } from "@cutroom/e2e/stack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { filePartHead, postMultipart } from "./multipart.ts";

// TRUST_PROXY: even the forwarded host of a trusted proxy must not become the host of a signed URL.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"], env: { TRUST_PROXY: "true" } });

/** A stand-in for an internal service (a metadata endpoint, a database's HTTP port): it records every request it gets. */
const internal = { server: undefined as Server | undefined, url: "", hits: [] as string[] };
beforeAll(async () => {
  internal.server = createServer((req, res) => {
    internal.hits.push(`${req.method} ${req.url}`);
    res.end("internal secret");
  });
  await new Promise<void>((r) => internal.server!.listen(0, "127.0.0.1", r));
  internal.url = `http://127.0.0.1:${(internal.server.address() as { port: number }).port}`;
});
afterAll(() => internal.server?.close());

/** A request with a Host header of our choosing (fetch sets its own). */
function requestWithHost(path: string, host: string, opts: { method?: string; token: string; json?: unknown; headers?: Record<string, string> }) {
  const { hostname, port } = new URL(ctx.stack.url);
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  return new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, method: opts.method ?? "GET", headers: { host, authorization: `Bearer ${opts.token}`, ...(body ? { "content-type": "application/json" } : {}), ...opts.headers } }, (res) => {
      let text = "";
      res.on("data", (d) => {
        text += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Sends `head` on a raw connection and resolves with the status line of the answer. */
function rawStatus(head: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(ctx.stack.url).port), "127.0.0.1", () => socket.write(head));
    let answer = "";
    socket.on("data", (d) => {
      answer += d.toString();
      if (answer.includes("\r\n")) socket.destroy();
    });
    socket.on("close", () => resolve(answer.split("\r\n")[0] ?? ""));
    socket.on("error", () => {});
    setTimeout(() => socket.destroy(), 5000);
  });
}

const settle = () => new Promise((r) => setTimeout(r, 500));

describe("API7 server side request forgery: signed URLs", () => {
  it("builds upload and download URLs on the configured address, whatever Host or X-Forwarded-Host the request claims", async () => {
    const { token } = await ctx.api.signUp();
    const png = await makePng();
    const claims = { "x-forwarded-host": new URL(internal.url).host, "x-forwarded-proto": "http" };
    const ticket = await requestWithHost("/api/v1/uploads", new URL(internal.url).host, { method: "POST", token, json: { filename: "a.png", content_type: "image/png", size: png.byteLength }, headers: claims });
    expect(ticket.status).toBe(201);
    expect(ticket.body.upload_url.startsWith(`${ctx.stack.url}/storage/blob/`)).toBe(true);
    expect((await fetch(ticket.body.upload_url, { method: "PUT", headers: ticket.body.headers, body: png })).status).toBe(200);
    expect((await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, token)).status).toBe(200);
    const link = await requestWithHost(`/api/v1/files/${ticket.body.file_id}/download-url`, "metadata.internal", { token, headers: claims });
    expect(link.status).toBe(200);
    expect(link.body.url.startsWith(`${ctx.stack.url}/storage/blob/`)).toBe(true);
    await settle();
    expect(internal.hits).toEqual([]);
  });
});

describe("API7 server side request forgery: the storage proxy", () => {
  it("forwards only signed blob paths to storage: dot segments, encoded slashes and absolute URLs reach nothing else", async () => {
    const target = new URL(internal.url);
    const heads = [
      "GET /storage/blob/../ingest/x HTTP/1.1",
      "PUT /storage/blob/%2e%2e/ingest/x HTTP/1.1",
      "GET /storage/blob/..%2Fingest%2Fx HTTP/1.1",
      "GET /storage/blob/%2F%2F127.0.0.1 HTTP/1.1",
      `GET ${internal.url}/storage/blob/x HTTP/1.1`,
      `GET ${internal.url}/latest/meta-data HTTP/1.1`,
      `GET //${target.host}/storage/blob/x HTTP/1.1`,
    ];
    for (const line of heads) {
      const status = await rawStatus(`${line}\r\nhost: ${target.host}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      expect(status, line).toMatch(/^HTTP\/1\.1 4\d\d /);
    }
    await settle();
    expect(internal.hits).toEqual([]);
  });
});

describe("API7 server side request forgery: media that names other resources", () => {
  const documents = () => ({
    "list.m3u8": `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n${internal.url}/segment.ts\n#EXT-X-ENDLIST\n`,
    "list.ffconcat": `ffconcat version 1.0\nfile ${internal.url}/clip.mp4\n`,
    "image.svg": `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64"><image xlink:href="${internal.url}/pixel.png" width="64" height="64"/></svg>`,
  });

  it("takes no URL where a job reads its input: no input field is a URL, and a URL given for a file id is 422", async () => {
    const { token } = await ctx.api.signUp();
    const types = (await ctx.api.get("/job-types")).body.data as Array<{ type: string; input_schema: { properties: Record<string, { format?: string }> } }>;
    expect(types.length).toBeGreaterThan(0);
    for (const t of types) {
      for (const [name, schema] of Object.entries(t.input_schema.properties)) {
        expect(`${t.type}.${name}`).not.toMatch(/url|uri|href|link|webhook|callback/i);
        expect(schema.format ?? "", `${t.type}.${name}`).not.toMatch(/uri|url/);
      }
    }
    for (const type of ["image.resize", "image.thumbnail", "video.color-grade", "audio.cleanup"]) {
      const res = await ctx.api.post("/jobs", { type, input: { file_id: `${internal.url}/input.png`, width: 8 } }, token);
      expectEnvelope(res, 422, "INVALID_INPUT");
    }
    await settle();
    expect(internal.hits).toEqual([]);
  });

  it("refuses a playlist, concat list or SVG that poses as media (415), and keeps one sent as a plain file away from every job (422)", async () => {
    const { token } = await ctx.api.signUp();
    const declared: Record<string, string> = { "list.m3u8": "video/mp4", "list.ffconcat": "video/mp4", "image.svg": "image/png" };
    for (const [name, text] of Object.entries(documents())) {
      const bytes = new TextEncoder().encode(text);
      expectEnvelope(await ctx.api.upload(token, name, declared[name]!, bytes), 415, "UNSUPPORTED_MEDIA_TYPE");

      // Sent as curl sends it (a generic type): stored as the plain file it is, never probed.
      const boundary = "ssrf-boundary";
      const res = await postMultipart(ctx.stack.url, token, Buffer.concat([filePartHead(boundary, "application/octet-stream", name), Buffer.from(bytes), Buffer.from(`\r\n--${boundary}--\r\n`)]), boundary);
      expect(res.status, name).toBe(201);
      const { file } = (await res.json()) as { file: { id: string; kind: string } };
      expect(file.kind, name).toBe("other");
      for (const [type, input] of [
        ["image.resize", { file_id: file.id, width: 8 }],
        ["image.thumbnail", { file_id: file.id }],
        ["video.color-grade", { file_id: file.id, preset: "Warm" }],
        ["audio.cleanup", { file_id: file.id, preset: "Light Denoise" }],
      ] as const) {
        expectEnvelope(await ctx.api.post("/jobs", { type, input }, token), 422, "INVALID_INPUT");
      }
    }
    await settle();
    expect(internal.hits).toEqual([]);
  });
});
