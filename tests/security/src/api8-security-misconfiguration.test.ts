// OWASP API8:2023 Security Misconfiguration: the headers a browser needs, CORS for the configured
// origins only, no cached tokens, no secrets in logs, no internals in errors, bad input answered with
// a 4xx rather than a crash, and a storage proxy that speaks HTTP as clients do (Expect: 100-continue).
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectEnvelope, type Reply } from "@cutroom/e2e/client";
import { makePng, makeVideo } from "@cutroom/e2e/media";
import { signUpAdmin, useStack } from "@cutroom/e2e/stack";
import { describe, expect, it } from "vitest";
import { curl, scratchDir } from "./curl.ts";
import { filePartHead, postMultipart } from "./multipart.ts";

const allowed = "https://app.example.com";
// At info, every request is logged, so the logs test sees what an operator's logs would hold.
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"],
  env: { CORS_ORIGINS: `${allowed}, https://admin.example.com`, LOG_LEVEL: "info" },
});

const scratch = scratchDir("api8");

const preflight = (url: string, origin: string, method: string, headers: string) =>
  fetch(url, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers } });

let admin: Promise<{ token: string }> | undefined;
/** The file's one admin, signed up on first use. */
const adminToken = async () => {
  admin ??= signUpAdmin(ctx);
  return (await admin).token;
};

describe("API8 security misconfiguration: headers", () => {
  it("sends helmet's headers on API answers, and no-store on answers with tokens or signed URLs", async () => {
    const res = await ctx.api.get("/job-types");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("strict-transport-security")).toMatch(/max-age=\d+/);
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    expectEnvelope(await ctx.api.get("/nothing-here"), 404);
    expect((await ctx.api.get("/nothing-here")).headers.get("x-content-type-options")).toBe("nosniff");

    const user = await ctx.api.signUp();
    const login = await ctx.api.post("/auth/login", { email: user.email, password: user.password });
    expect(login.headers.get("cache-control")).toBe("no-store");
    expect((await ctx.api.post("/auth/refresh", { refresh_token: login.body.refresh_token })).headers.get("cache-control")).toBe("no-store");
    const png = await makePng();
    const ticket = await ctx.api.post("/uploads", { filename: "a.png", content_type: "image/png", size: png.byteLength }, user.token);
    expect(ticket.headers.get("cache-control")).toBe("no-store");
    await fetch(ticket.body.upload_url, { method: "PUT", headers: ticket.body.headers, body: png });
    await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, user.token);
    expect((await ctx.api.get(`/files/${ticket.body.file_id}/download-url`, user.token)).headers.get("cache-control")).toBe("no-store");
  });

  it("keeps the docs UI working: its page, every asset it references and the document it loads", async () => {
    const page = await fetch(`${ctx.stack.url}/docs/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).not.toMatch(/upgrade-insecure-requests/);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => new URL(m[1]!, `${ctx.stack.url}/docs/`).href);
    expect(assets.length).toBeGreaterThanOrEqual(5);
    for (const url of assets) expect((await fetch(url)).status, url).toBe(200);
    const initializer = await (await fetch(`${ctx.stack.url}/docs/static/swagger-initializer.js`)).text();
    const specUrl = initializer.match(/url: resolveUrl\('([^']+)'\)/)?.[1];
    expect(specUrl).toBeDefined();
    const spec = await fetch(new URL(specUrl!, `${ctx.stack.url}/docs/`));
    expect(spec.status).toBe(200);
    expect(((await spec.json()) as { openapi: string }).openapi).toMatch(/^3\.1/);
  });

  it("lets the configured browser origins, and no other, call the API and PUT to a signed upload URL", async () => {
    const { token } = await ctx.api.signUp();
    const api = await preflight(`${ctx.stack.url}/api/v1/uploads`, allowed, "POST", "authorization,content-type");
    expect(api.status).toBe(204);
    expect(api.headers.get("access-control-allow-origin")).toBe(allowed);
    expect(api.headers.get("access-control-allow-headers")).toMatch(/authorization/);
    const stranger = await preflight(`${ctx.stack.url}/api/v1/uploads`, "https://evil.example.net", "POST", "authorization,content-type");
    expect(stranger.headers.get("access-control-allow-origin")).toBeNull();

    const png = await makePng();
    const ticket = await ctx.api.post("/uploads", { filename: "cors.png", content_type: "image/png", size: png.byteLength }, token);
    const upload = await preflight(ticket.body.upload_url, allowed, "PUT", "content-type");
    expect(upload.status).toBe(204);
    expect(upload.headers.get("access-control-allow-origin")).toBe(allowed);
    expect(upload.headers.get("access-control-allow-methods")).toMatch(/PUT/);
    expect((await preflight(ticket.body.upload_url, "https://evil.example.net", "PUT", "content-type")).headers.get("access-control-allow-origin")).toBeNull();
    const put = await fetch(ticket.body.upload_url, { method: "PUT", headers: { ...ticket.body.headers, origin: allowed }, body: png });
    expect(put.status).toBe(200);
    expect(put.headers.get("access-control-allow-origin")).toBe(allowed);
    expect((await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, token)).status).toBe(200);
    const link = await ctx.api.get(`/files/${ticket.body.file_id}/download-url`, token);
    const download = await fetch(link.body.url, { headers: { origin: allowed } });
    expect(download.headers.get("access-control-allow-origin")).toBe(allowed);
    expect(download.headers.get("access-control-expose-headers")).toMatch(/content-disposition/);
  });
});

describe("API8 security misconfiguration: what leaks", () => {
  it("never logs an access token or a signed storage token, only a placeholder", async () => {
    const user = await ctx.api.signUp();
    const signed = `v1.${randomUUID()}.signature`;
    await fetch(`${ctx.stack.url}/api/v1/jobs/${randomUUID()}/events?access_token=${user.token}`);
    await fetch(`${ctx.stack.url}/storage/blob/${signed}`);
    await ctx.api.get("/auth/me", user.token);
    await new Promise((r) => setTimeout(r, 300));
    const log = readFileSync(join(ctx.stack.dir, "logs", "gateway.log"), "utf8");
    expect(log).toContain("access_token=[redacted]");
    expect(log).toContain("/storage/blob/[redacted]");
    expect(log).not.toContain(user.token);
    expect(log).not.toContain(signed);
  });

  it("answers a service outage with 503 and a plain message: no stack, address, subject or error text of the internals", async () => {
    const { token } = await ctx.api.signUp();
    const png = Buffer.from(await makePng());
    await ctx.stack.services.stop("storage-service");
    const answers: Reply[] = [];
    try {
      answers.push(await ctx.api.post("/uploads", { filename: "a.png", content_type: "image/png", size: png.byteLength }, token));
      answers.push(await ctx.api.get("/files", token));
      const boundary = "outage";
      const res = await postMultipart(ctx.stack.url, token, Buffer.concat([filePartHead(boundary, "image/png"), png, Buffer.from(`\r\n--${boundary}--\r\n`)]), boundary);
      answers.push({ status: res.status, headers: res.headers, body: await res.json() });
    } finally {
      await ctx.stack.services.start("storage-service");
    }
    for (const answer of answers) {
      expectEnvelope(answer, 503, "SERVICE_UNAVAILABLE");
      const text = JSON.stringify(answer.body);
      expect(text).not.toMatch(/\bat [\w.<>]+ \(|node:internal|ECONNREFUSED|127\.0\.0\.1|svc\.|_INBOX|nats|postgres|\.ts\b/i);
      expect(text).not.toContain(ctx.stack.dir);
    }
    expect(answers[0]!.headers.get("x-powered-by")).toBeNull();
  });
});

describe("API8 security misconfiguration: bad input", () => {
  it("answers malformed multipart parts with a 4xx in the envelope, never a 5xx", async () => {
    const { token } = await ctx.api.signUp();
    const png = Buffer.from(await makePng());
    const boundary = "b0undary";
    const part = (type: string, bytes: Buffer) => Buffer.concat([filePartHead(boundary, type), bytes]);
    const end = Buffer.from(`\r\n--${boundary}--\r\n`);

    const longType = await postMultipart(ctx.stack.url, token, Buffer.concat([part(`image/${"x".repeat(3000)}`, png), end]), boundary);
    expect(longType.status, await longType.clone().text()).toBeGreaterThanOrEqual(400);
    expect(longType.status).toBeLessThan(500);
    expect(await longType.json()).toMatchObject({ error: { code: expect.any(String), request_id: expect.any(String) } });

    const unterminated = await postMultipart(ctx.stack.url, token, part("image/png", png), boundary);
    expect(unterminated.status, await unterminated.clone().text()).toBe(400);
    expect(await unterminated.json()).toMatchObject({ error: { code: "BAD_REQUEST" } });
    expect((await ctx.api.get("/files", token)).body.total).toBe(0);
  });

  it("refuses a NUL character in a name or an admin's grant note with 400", async () => {
    const reg = await ctx.api.post("/auth/register", { email: `nul-${randomUUID()}@e2e.cutroom.test`, password: "correct horse battery", full_name: "Ada\u0000Lovelace" });
    expectEnvelope(reg, 400, "BAD_REQUEST");
    const user = await ctx.api.signUp();
    const grant = await ctx.api.post(`/admin/users/${user.user_id}/credits`, { amount: 5, note: "thanks\u0000" }, await adminToken());
    expectEnvelope(grant, 400, "BAD_REQUEST");
    expect((await ctx.api.get("/billing/credits", user.token)).body.credits).toBe(100);
  });
});

describe("API8 security misconfiguration: the storage proxy", () => {
  it("takes a real video of more than 1 MB from `curl -T` (which sends Expect: 100-continue)", async () => {
    const { token } = await ctx.api.signUp();
    const video = makeVideo(6, "1280x720");
    expect(video.byteLength).toBeGreaterThan(1024 * 1024);
    const path = join(scratch, "clip.mp4");
    writeFileSync(path, video);
    const ticket = await ctx.api.post("/uploads", { filename: "clip.mp4", content_type: "video/mp4", size: video.byteLength }, token);
    expect(ticket.status).toBe(201);
    const put = await curl(["-T", path, "-H", "content-type: video/mp4", "-o", "/dev/null", "-w", "%{http_code}", ticket.body.upload_url]);
    expect(put.stdout).toBe("200");
    const confirmed = await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, token);
    expect(confirmed.body.file).toMatchObject({ status: "ready", kind: "video", size: video.byteLength });
  });
});
