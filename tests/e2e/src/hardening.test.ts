import { execFile } from "node:child_process";
import { connect } from "node:net";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { makePng, makeVideo } from "./media.ts";
import WebSocket from "ws";
import { signUpAdmin, useStack } from "./stack.ts";

const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] });

const scratch = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "hardening-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));

/** Runs curl as a user would; resolves with its exit code, output and how long it took. */
function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile("curl", ["-sS", ...args], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** The bytes storage keeps for a user, and every upload still arriving (the fs driver's temp files). */
function storedFiles(userId: string): Array<{ path: string; size: number }> {
  return [join(ctx.stack.storageDir, userId), join(ctx.stack.storageDir, ".tmp")].flatMap((dir) =>
    existsSync(dir) ? readdirSync(dir).map((f) => ({ path: join(dir, f), size: statSync(join(dir, f)).size })) : [],
  );
}

let admin: Promise<{ token: string }> | undefined;
/** The file's one admin, signed up on first use. */
const adminToken = async () => (await (admin ??= signUpAdmin(ctx))).token;

describe("signed uploads through the gateway", () => {
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

  it("passes storage's 413 and 403 through in the envelope, and the connection does not hang after them", async () => {
    const { token } = await ctx.api.signUp();
    const path = join(scratch, "big.bin");
    writeFileSync(path, randomBytes(5 * 1024 * 1024));
    const ticket = await ctx.api.post("/uploads", { filename: "small.bin", content_type: "application/octet-stream", size: 1000 }, token);
    const forged = ticket.body.upload_url.replace(/.$/, (c: string) => (c === "a" ? "b" : "a"));
    for (const [url, status, code] of [
      [ticket.body.upload_url, "413", "PAYLOAD_TOO_LARGE"],
      [forged, "403", "FORBIDDEN"],
    ] as const) {
      const out = join(scratch, `answer-${status}.json`);
      // The refused PUT, then a second request that may reuse its connection: both answer at once.
      const res = await curl(["--max-time", "20", "-T", path, "-H", "content-type: application/octet-stream", "-o", out, "-w", "%{http_code}", url, "--next", "-sS", "-o", "/dev/null", "-w", " %{http_code}", `${ctx.stack.url}/health/live`]);
      expect(res.stdout, res.stderr).toBe(`${status} 200`);
      expect(res.ms).toBeLessThan(10_000);
      expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ error: { code, request_id: expect.any(String) } });
    }
    expect((await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, token)).status).toBe(409);
  });

  it("keeps storage's internal ingest endpoint and anything else under /storage off the public port", async () => {
    for (const path of [`/storage/ingest/${randomUUID()}`, "/storage/anything", "/storage/blob"]) {
      const res = await ctx.api.request("PUT", path, { body: "x", headers: { "content-type": "application/octet-stream" } });
      expectEnvelope(res, 404, "NOT_FOUND");
    }
  });
});

describe("multipart uploads", () => {
  const multipart = (token: string, body: NonNullable<RequestInit["body"]>, boundary: string) =>
    fetch(`${ctx.stack.url}/api/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": `multipart/form-data; boundary=${boundary}` },
      body,
      duplex: "half",
    } as RequestInit);

  it("refuses a file over the tier's limit with 413 and keeps no row and no bytes of it", { timeout: 180_000 }, async () => {
    const { token, user_id } = await ctx.api.signUp();
    const limit = 500 * 1024 * 1024; // the free tier's
    const boundary = "cutroom-boundary";
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="huge.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`));
      },
      pull(c) {
        if (sent < limit + chunk.length) {
          sent += chunk.length;
          c.enqueue(chunk);
        } else {
          c.enqueue(Buffer.from(`\r\n--${boundary}--\r\n`));
          c.close();
        }
      },
    });
    const res = await multipart(token, body, boundary);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
    expect((await ctx.api.get("/files", token)).body.total).toBe(0);
    const deadline = Date.now() + 5000;
    while (storedFiles(user_id).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(storedFiles(user_id)).toEqual([]);
  });

  it("answers malformed parts with a 4xx in the envelope, never a 5xx", async () => {
    const { token } = await ctx.api.signUp();
    const png = Buffer.from(await makePng());
    const boundary = "b0undary";
    const part = (type: string, bytes: Buffer) =>
      Buffer.concat([Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.png"\r\ncontent-type: ${type}\r\n\r\n`), bytes]);
    const end = Buffer.from(`\r\n--${boundary}--\r\n`);

    const longType = await multipart(token, Buffer.concat([part(`image/${"x".repeat(3000)}`, png), end]), boundary);
    expect(longType.status, await longType.clone().text()).toBeGreaterThanOrEqual(400);
    expect(longType.status).toBeLessThan(500);
    expect(await longType.json()).toMatchObject({ error: { code: expect.any(String), request_id: expect.any(String) } });

    const unterminated = await multipart(token, part("image/png", png), boundary);
    expect(unterminated.status, await unterminated.clone().text()).toBe(400);
    expect(await unterminated.json()).toMatchObject({ error: { code: "BAD_REQUEST" } });
    expect((await ctx.api.get("/files", token)).body.total).toBe(0);
  });
});

describe("JSON bodies", () => {
  it("refuses a NUL character in a name or an admin's grant note with 400", async () => {
    const reg = await ctx.api.post("/auth/register", { email: `nul-${randomUUID()}@e2e.cutroom.test`, password: "correct horse battery", full_name: "Ada\u0000Lovelace" });
    expectEnvelope(reg, 400, "BAD_REQUEST");
    const user = await ctx.api.signUp();
    const grant = await ctx.api.post(`/admin/users/${user.user_id}/credits`, { amount: 5, note: "thanks\u0000" }, await adminToken());
    expectEnvelope(grant, 400, "BAD_REQUEST");
    expect((await ctx.api.get("/billing/credits", user.token)).body.credits).toBe(100);
  });
});

describe("/health", () => {
  it("blames no dependency for a service being down, says unknown when nobody can tell, and keeps reasons for admins", async () => {
    await ctx.stack.services.stop("job-service");
    await ctx.stack.services.stop("storage-service");
    try {
      const anonymous = await ctx.api.request("GET", "/health");
      expect(anonymous.status).toBe(503);
      expect(anonymous.body.checks.database.status).toBe("up"); // auth and billing reach it
      expect(anonymous.body.checks.storage.status).toBe("unknown");
      expect(anonymous.body.services).toMatchObject({ job: { status: "down" }, storage: { status: "down" }, auth: { status: "up" } });
      expect(JSON.stringify(anonymous.body)).not.toMatch(/"error"/);

      const forAdmin = await ctx.api.request("GET", "/health", { token: await adminToken() });
      expect(forAdmin.body.services.job).toMatchObject({ status: "down", error: expect.any(String) });
      expect(forAdmin.body.checks.storage).toMatchObject({ status: "unknown", error: expect.any(String) });
      const user = await ctx.api.signUp();
      expect(JSON.stringify((await ctx.api.request("GET", "/health", { token: user.token })).body)).not.toMatch(/"error"/);
    } finally {
      await ctx.stack.services.start("storage-service");
      await ctx.stack.services.start("job-service");
    }
  });
});

describe("security headers", () => {
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
});

describe("connection limits", () => {
  // A gateway of its own for these: short timeouts and a small per-user cap.
  const restartGateway = async (env: Record<string, string>) => {
    await ctx.stack.services.stop("gateway");
    await ctx.stack.services.start("gateway", env);
  };
  const port = () => Number(new URL(ctx.stack.url).port);

  /** Opens a raw connection and sends `head`; resolves with how long until the server closed it (or `waitMs` when it did not). */
  function heldFor(head: string, waitMs: number, trickle?: { everyMs: number }): Promise<{ ms: number; closed: boolean; answer: string }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const socket = connect(port(), "127.0.0.1", () => socket.write(head));
      let answer = "";
      socket.on("data", (d) => (answer += d.toString()));
      const timer = trickle ? setInterval(() => socket.writable && socket.write("a"), trickle.everyMs) : undefined;
      const done = (closed: boolean) => {
        clearInterval(timer);
        clearTimeout(give);
        socket.destroy();
        resolve({ ms: Date.now() - started, closed, answer });
      };
      const give = setTimeout(() => done(false), waitMs);
      socket.on("close", () => done(true));
      socket.on("error", () => {});
    });
  }

  it("closes a connection whose request body stalls or trickles, and still takes an upload that keeps sending", { timeout: 60_000 }, async () => {
    await restartGateway({ REQUEST_IDLE_TIMEOUT_MS: "1500", REQUEST_TIMEOUT_MS: "5000" });
    try {
      const head = `POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"email":`;
      const stalled = await heldFor(head, 10_000);
      expect(stalled.closed).toBe(true);
      expect(stalled.ms).toBeLessThan(4000);
      const trickling = await heldFor(head, 15_000, { everyMs: 300 });
      expect(trickling.closed).toBe(true);
      expect(trickling.ms).toBeGreaterThan(4000);
      expect(trickling.ms).toBeLessThan(9000);

      // A signed PUT sending a chunk every 500 ms for 3 s: longer than the idle timeout, within the total.
      const { token } = await ctx.api.signUp();
      const bytes = randomBytes(6 * 64 * 1024);
      const ticket = await ctx.api.post("/uploads", { filename: "slow.bin", content_type: "application/octet-stream", size: bytes.length }, token);
      let i = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (i === 6) return c.close();
          await new Promise((r) => setTimeout(r, 500));
          c.enqueue(bytes.subarray(i * 64 * 1024, ++i * 64 * 1024));
        },
      });
      const put = await fetch(ticket.body.upload_url, { method: "PUT", headers: { ...ticket.body.headers, "content-length": String(bytes.length) }, body, duplex: "half" } as RequestInit);
      expect(put.status).toBe(200);
    } finally {
      await restartGateway({});
    }
  });

  it("refuses a user's WebSocket or event stream past WS_MAX_CONNECTIONS_PER_USER (1008, 429), and takes it again once one closes", { timeout: 60_000 }, async () => {
    await restartGateway({ WS_MAX_CONNECTIONS_PER_USER: "3" });
    const sockets: WebSocket[] = [];
    try {
      const user = await ctx.api.signUp();
      const other = await ctx.api.signUp();
      const png = await makePng();
      const file = (await ctx.api.upload(user.token, "a.png", "image/png", png)).body.file;
      // No worker runs in this stack: the job stays queued and its event stream open.
      const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: file.id, width: 16 } }, user.token, { "idempotency-key": randomUUID() });
      expect(job.status).toBe(202);
      const wsUrl = ctx.stack.url.replace(/^http/, "ws");
      const open = (path: string, token: string) =>
        new Promise<{ ws: WebSocket; closed?: number }>((resolve) => {
          const ws = new WebSocket(`${wsUrl}${path}${path.includes("?") ? "&" : "?"}access_token=${token}`);
          sockets.push(ws);
          ws.once("close", (code) => resolve({ ws, closed: code }));
          // Opened and still open a moment later: the limit is checked once the token is verified.
          ws.once("open", () => setTimeout(() => ws.readyState === ws.OPEN && resolve({ ws }), 500));
        });
      const sse = (token: string) => fetch(`${ctx.stack.url}/api/v1/jobs/${job.body.id}/events`, { headers: { authorization: `Bearer ${token}` } });

      expect((await open("/ws", user.token)).closed).toBeUndefined();
      expect((await open(`/ws/jobs/${job.body.id}`, user.token)).closed).toBeUndefined();
      const stream = await sse(user.token);
      expect(stream.status).toBe(200);

      expect((await open("/ws", user.token)).closed).toBe(1008);
      expect((await open(`/ws/jobs/${job.body.id}`, user.token)).closed).toBe(1008);
      const refused = await sse(user.token);
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ error: { code: "RATE_LIMITED" } });
      expect((await open("/ws", other.token)).closed).toBeUndefined();

      await stream.body!.cancel();
      await new Promise((r) => setTimeout(r, 300));
      expect((await open("/ws", user.token)).closed).toBeUndefined();
    } finally {
      for (const ws of sockets) ws.terminate();
      await restartGateway({});
    }
  });
});
