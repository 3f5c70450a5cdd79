// OWASP API4:2023 Unrestricted Resource Consumption: every way a client makes the platform spend
// (jobs, pixels, seconds of media, bytes stored, request bodies, connections, pages) has a bound,
// per tier where the work is paid for, and refusing costs nothing kept.
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { expectEnvelope } from "@cutroom/e2e/client";
import { jobHelpers } from "@cutroom/e2e/jobs";
import { makePng, makeVideo } from "@cutroom/e2e/media";
import { useStack } from "@cutroom/e2e/stack";
import WebSocket from "ws";
import { describe, expect, it } from "vitest";
import { curl, scratchDir } from "./curl.ts";
import { filePartHead, postMultipart } from "./multipart.ts";
import { withRestarted } from "./services.ts";

// No workers: what is asserted is what the API refuses and reserves at enqueue, and what it holds open.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] });

const scratch = scratchDir("api4");

const { userWithImage } = jobHelpers(ctx);

/** The bytes storage keeps for a user, and every upload still arriving (the fs driver's temp files). */
function storedFiles(userId: string): Array<{ path: string; size: number }> {
  return [join(ctx.stack.storageDir, userId), join(ctx.stack.storageDir, ".tmp")].flatMap((dir) =>
    existsSync(dir) ? readdirSync(dir).map((f) => ({ path: join(dir, f), size: statSync(join(dir, f)).size })) : [],
  );
}

describe("API4 unrestricted resource consumption: work bounded by tier and paid for by size", () => {
  it("refuses a tiny PNG asked to become a 16384×16384 AVIF with 422 for a free user, and reserves nothing", async () => {
    const u = await ctx.api.signUp();
    const png = await makePng(1, 1);
    expect(png.byteLength).toBeLessThan(200);
    const upload = await ctx.api.upload(u.token, "dot.png", "image/png", png);
    expect(upload.status).toBe(200);
    expect(upload.body.file.media).toMatchObject({ width: 1, height: 1, duration_seconds: null, frame_rate: null });

    const input = { file_id: upload.body.file.id, width: 16384, height: 16384, format: "avif" };
    const refused = await ctx.api.post("/jobs", { type: "image.resize", input }, u.token);
    expectEnvelope(refused, 422, "INVALID_INPUT");
    expect(refused.body.error.message).toContain("free tier");
    expect(refused.body.error.details).toMatchObject({ limit: "max_output_pixels", tier: "free", value: 16384 * 16384, max: 4096 * 4096 });
    expectEnvelope(await ctx.api.post("/jobs/estimate", { type: "image.resize", input }, u.token), 422, "INVALID_INPUT");
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(0);

    // Within the tier it is taken, at one credit per started 2048×2048 of output.
    const fits = await ctx.api.post("/jobs", { type: "image.resize", input: { ...input, width: 4096, height: 4096 } }, u.token);
    expect(fits.status).toBe(202);
    expect(fits.body.credits).toEqual({ amount: 4, state: "reserved" });
  });

  it("reserves more credits for a longer video, as the estimate says", async () => {
    const u = await ctx.api.signUp();
    const enqueue = async (seconds: number) => {
      const { body } = await ctx.api.upload(u.token, `clip-${seconds}.mp4`, "video/mp4", makeVideo(seconds, "64x48"));
      expect(body.file.media.duration_seconds).toBeCloseTo(seconds, 0);
      const input = { file_id: body.file.id, preset: "Warm" };
      const estimate = await ctx.api.post("/jobs/estimate", { type: "video.color-grade", input }, u.token);
      const job = await ctx.api.post("/jobs", { type: "video.color-grade", input }, u.token);
      expect(job.status).toBe(202);
      expect(estimate.body.credits).toBe(job.body.credits.amount);
      return job.body.credits.amount as number;
    };
    expect(await enqueue(1)).toBe(25);
    expect(await enqueue(65)).toBe(50);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 25, reserved: 75 });
  });

  it("says each type's price rule in GET /job-types", async () => {
    const types = (await ctx.api.get("/job-types")).body.data;
    const rule = (type: string) => types.find((t: { type: string }) => t.type === type).cost.description;
    expect(rule("image.resize")).toBe("1 credit per started 2048×2048 (4.2 megapixels) of output image");
    expect(rule("video.color-grade")).toMatch(/^25 credits per started minute/);
    expect(rule("audio.cleanup")).toBe("5 credits per started 5 minutes of audio");
  });

  it("limits job creation per tier per minute: 429 with X-RateLimit headers; invalid requests and idempotent replays take no slot", { timeout: 90_000 }, async () => {
    const u = await userWithImage();
    const key = randomUUID();
    const enqueue = (i: number) =>
      ctx.api.post("/jobs", { type: "image.resize", input: { file_id: u.fileId, width: 8 } }, u.token, i === 0 ? { "idempotency-key": key } : undefined);
    // Windows are whole minutes: start early in one so all requests land in the same window.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 45_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
    for (let i = 0; i < 3; i++) expectEnvelope(await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: u.fileId, width: -1 } }, u.token), 422);
    const replies = [];
    for (let i = 0; i < 11; i++) replies.push(await enqueue(i));
    expect(new Set(replies.map((r) => r.headers.get("x-ratelimit-reset"))).size).toBe(1);
    expect(replies.slice(0, 10).every((r) => r.status === 202)).toBe(true);
    expect(replies.map((r) => r.headers.get("x-ratelimit-remaining")).slice(0, 10)).toEqual(["9", "8", "7", "6", "5", "4", "3", "2", "1", "0"]);
    const limited = replies[10]!;
    expectEnvelope(limited, 429, "RATE_LIMITED");
    expect(limited.headers.get("x-ratelimit-limit")).toBe("10");
    expect(limited.headers.get("x-ratelimit-remaining")).toBe("0");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    // A client retrying its first request (same key) past the limit gets its job back, not 429.
    const retried = await enqueue(0);
    expect(retried.status).toBe(202);
    expect(retried.headers.get("idempotent-replayed")).toBe("true");
    expect(retried.body.id).toBe(replies[0]!.body.id);
  });
});

describe("API4 unrestricted resource consumption: bytes stored", () => {
  it("refuses an upload larger than the tier allows with 413", async () => {
    const { token } = await ctx.api.signUp();
    const big = await ctx.api.post("/uploads", { filename: "huge.mp4", content_type: "video/mp4", size: 600 * 1024 * 1024 }, token);
    expectEnvelope(big, 413, "PAYLOAD_TOO_LARGE");
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

  it("refuses a multipart file over the tier's limit with 413 and keeps no row and no bytes of it", { timeout: 180_000 }, async () => {
    const { token, user_id } = await ctx.api.signUp();
    const limit = 500 * 1024 * 1024; // the free tier's
    const boundary = "cutroom-boundary";
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(filePartHead(boundary, "application/octet-stream", "huge.bin"));
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
    const res = await postMultipart(ctx.stack.url, token, body, boundary);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
    expect((await ctx.api.get("/files", token)).body.total).toBe(0);
    const deadline = Date.now() + 5000;
    while (storedFiles(user_id).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(storedFiles(user_id)).toEqual([]);
  });
});

describe("API4 unrestricted resource consumption: requests", () => {
  it("refuses a JSON body over 1 MB with 413 and one nested past 32 levels with 400, at once, and keeps serving", async () => {
    const started = Date.now();
    const big = await ctx.api.post("/auth/register", { email: "big@e2e.cutroom.test", password: "correct horse battery", full_name: "x".repeat(2 * 1024 * 1024) });
    expectEnvelope(big, 413, "PAYLOAD_TOO_LARGE");
    const deep = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
    for (const depth of [33, 200_000]) {
      const res = await ctx.api.request("POST", "/api/v1/auth/register", { body: `{"email":"deep@e2e.cutroom.test","password":"x","full_name":${deep(depth)}}`, headers: { "content-type": "application/json" } });
      expectEnvelope(res, 400, "BAD_REQUEST");
    }
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await ctx.api.request("GET", "/health/live")).status).toBe(200);
  });

  it("caps a page at 100 items: a larger limit is 422, not a query for everything", async () => {
    const { token } = await ctx.api.signUp();
    for (const path of ["/files?limit=1000000", "/jobs?limit=101", "/billing/ledger?limit=5000", "/files?offset=-1"]) {
      expectEnvelope(await ctx.api.get(path, token), 422, "INVALID_INPUT");
    }
    expect((await ctx.api.get("/jobs?limit=100", token)).body).toMatchObject({ limit: 100 });
  });
});

describe("API4 unrestricted resource consumption: connections", () => {
  const port = () => Number(new URL(ctx.stack.url).port);

  /** Opens a raw connection and sends `head`; resolves with how long until the server closed it (or `waitMs` when it did not). */
  function heldFor(head: string, waitMs: number, trickle?: { everyMs: number }): Promise<{ ms: number; closed: boolean; answer: string }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const socket = connect(port(), "127.0.0.1", () => socket.write(head));
      let answer = "";
      socket.on("data", (d) => {
        answer += d.toString();
      });
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
    // A gateway of its own for this: short timeouts.
    await withRestarted(ctx.stack, "gateway", { REQUEST_IDLE_TIMEOUT_MS: "1500", REQUEST_TIMEOUT_MS: "5000" }, async () => {
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
    });
  });

  it("refuses a user's WebSocket or event stream past WS_MAX_CONNECTIONS_PER_USER (1008, 429), and takes it again once one closes", { timeout: 60_000 }, async () => {
    const sockets: WebSocket[] = [];
    // A gateway of its own for this: a small per-user cap.
    await withRestarted(ctx.stack, "gateway", { WS_MAX_CONNECTIONS_PER_USER: "3" }, async () => {
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
      }
    });
  });
});
