import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "./client.ts";
import { expectEnvelope } from "./client.ts";
import { makePng } from "./media.ts";
import { useStack } from "./stack.ts";

const apps = ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] as const;

/** A web server on loopback: what an import would fetch from the internet, without the internet. */
function useWebServer(body: () => Promise<Uint8Array>) {
  const web = { url: "" };
  const server = createServer(async (req, res) => {
    if (req.url === "/redirect") return res.writeHead(302, { location: "/picture.png" }).end();
    res.writeHead(200, { "content-type": "image/png" }).end(await body());
  });
  beforeAll(async () => {
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    web.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));
  return web;
}

async function settled(api: Client, token: string, id: string) {
  for (;;) {
    const res = await api.get(`/imports/${id}`, token);
    if (res.status !== 200 || res.body.status !== "running") return res;
    await sleep(50);
  }
}

describe("file imports, download URLs and file lists (default settings)", () => {
  const ctx = useStack({ apps });
  const web = useWebServer(() => makePng());

  it("refuses file:// and loopback URLs with 422 IMPORT_URL_REFUSED in the error envelope", async () => {
    const { token } = await ctx.api.signUp();
    for (const url of ["file:///etc/passwd", `${web.url}/picture.png`, "http://localhost:1/x.png", "http://169.254.169.254/latest/meta-data/"]) {
      expectEnvelope(await ctx.api.post("/files/import", { url }, token), 422, "IMPORT_URL_REFUSED");
    }
    expectEnvelope(await ctx.api.post("/files/import", { url: "not a url" }, token), 422, "INVALID_INPUT");
    expect((await ctx.api.get("/files", token)).body.total).toBe(0);
  });

  it("signs download URLs for 60 s to 7 days (3600 by default) and refuses anything else with 422", async () => {
    const { token } = await ctx.api.signUp();
    const { body } = await ctx.api.upload(token, "a.png", "image/png", await makePng());
    const id = body.file.id as string;
    const plain = await ctx.api.get(`/files/${id}/download-url`, token);
    expect(plain.status).toBe(200);
    expect(plain.body.expires_in).toBe(3600);
    const week = await ctx.api.get(`/files/${id}/download-url?expires_in=604800`, token);
    expect(week.body.expires_in).toBe(604800);
    expect(Date.parse(week.body.expires_at) - Date.parse(plain.body.expires_at)).toBeGreaterThan((604800 - 3600 - 60) * 1000);
    expect((await fetch(week.body.url)).status).toBe(200);
    for (const bad of ["59", "604801", "1.5", "abc", "", "-60"]) {
      expectEnvelope(await ctx.api.get(`/files/${id}/download-url?expires_in=${bad}`, token), 422, "INVALID_INPUT");
    }
  });

  it("lists files with include=url (each with a working download URL) and refuses unknown kinds, categories and includes", async () => {
    const { token } = await ctx.api.signUp();
    const png = await makePng();
    await ctx.api.upload(token, "a.png", "image/png", png);
    const list = await ctx.api.get("/files?include=url", token);
    expect(list.status).toBe(200);
    const bytes = Buffer.from(await (await fetch(list.body.data[0].download.url)).arrayBuffer());
    expect(bytes.equals(Buffer.from(png))).toBe(true);
    expect((await ctx.api.get("/files?category=final", token)).body.total).toBe(0);
    for (const q of ["kind=pictures", "category=clips", "include=everything"]) expectEnvelope(await ctx.api.get(`/files?${q}`, token), 422, "INVALID_INPUT");
  });
});

describe("file imports from a loopback server (FILES_IMPORT_ALLOW_PRIVATE, for tests only)", () => {
  const ctx = useStack({ apps, env: { FILES_IMPORT_ALLOW_PRIVATE: "true" } });
  const web = useWebServer(() => makePng(48, 24));

  it("answers 202 with an import to follow, which ends with a ready, measured file", async () => {
    const { token } = await ctx.api.signUp();
    const started = await ctx.api.post("/files/import", { url: `${web.url}/redirect` }, token);
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ status: "running", error: null });
    const done = await settled(ctx.api, token, started.body.id);
    expect(done.body).toMatchObject({ status: "succeeded", file: { id: started.body.file_id, filename: "picture.png", status: "ready", kind: "image", media: { width: 48, height: 24 } } });
    expect((await ctx.api.get(`/files/${started.body.file_id}`, token)).body.file.status).toBe("ready");
    const other = await ctx.api.signUp();
    expectEnvelope(await ctx.api.get(`/imports/${started.body.id}`, other.token), 404);
  });
});
