import { readdirSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import postgres from "postgres";
import WebSocket from "ws";
import { describe, expect, it } from "vitest";
import { makePng, makeVideo } from "./media.ts";
import { signUpAdmin, useStack } from "./stack.ts";
import { eventsOf, expectGapFree, watchJob } from "./watch.ts";

// Short timings so that redelivery and reconciliation happen within a test's patience.
const ctx = useStack({
    env: { JOB_ACK_WAIT_MS: "3000", JOB_LEASE_MS: "3000", RECONCILE_INTERVAL_MS: "500", REDISPATCH_AFTER_MS: "2000", WORKER_CONCURRENCY: "2" },
  });

const longVideo = () => makeVideo(30, "640x360");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Live ffmpeg processes working on the job (their arguments name its temp dir `job-<id>-…`), read
 * from /proc rather than pgrep, whose absence or failure looked like "no ffmpeg". A zombie has an
 * empty cmdline, so a killed but unreaped ffmpeg counts as stopped; no /proc throws, failing the test.
 */
function ffmpegPidsFor(jobId: string): number[] {
  return readdirSync("/proc").flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      return []; // exited while we looked
    }
    return basename(argv[0] ?? "") === "ffmpeg" && argv.some((arg) => arg.includes(jobId)) ? [Number(entry)] : [];
  });
}

describe("live progress and resilience", () => {
  it("cancels a running video job: ffmpeg is stopped within 2 s, the job ends canceled, credits come back", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "long.mp4", "video/mp4", longVideo());
    const job = await ctx.api.post("/jobs", { type: "video.color-grade", input: { file_id: body.file.id, preset: "Cool" } }, u.token);
    let canceledAt = 0;
    let beforeCancel: number[] = [];
    let stopped: Promise<{ afterMs: number; left: number[] }> | undefined;
    // Polled from the cancel on, apart from the watch, so a late terminal event cannot hide a slow kill.
    const untilFfmpegGone = async () => {
      let left = ffmpegPidsFor(job.body.id);
      while (left.length > 0 && Date.now() - canceledAt < 5000) {
        await sleep(50);
        left = ffmpegPidsFor(job.body.id);
      }
      return { afterMs: Date.now() - canceledAt, left };
    };
    const watched = await watchJob(ctx.stack.url, u.token, job.body.id, {
      since: 0,
      onMessage: (m) => {
        if (m.type === "progress" && m.progress > 0 && !canceledAt) {
          beforeCancel = ffmpegPidsFor(job.body.id);
          canceledAt = Date.now();
          void ctx.api.post(`/jobs/${job.body.id}/cancel`, {}, u.token);
          stopped = untilFfmpegGone();
        }
      },
    });
    expect(canceledAt).toBeGreaterThan(0);
    // Otherwise "gone after the cancel" proves nothing.
    expect(beforeCancel, "ffmpeg was running for the job before the cancel").not.toEqual([]);
    expect(eventsOf(watched).at(-1)).toMatchObject({ type: "error", status: "canceled" });
    const { afterMs, left } = await stopped!;
    expect(left, `ffmpeg still running ${afterMs} ms after the cancel`).toEqual([]);
    expect(afterMs, "ms from the cancel until ffmpeg was gone").toBeLessThanOrEqual(2000);
    const final = (await ctx.api.get(`/jobs/${job.body.id}`, u.token)).body;
    expect(final).toMatchObject({ status: "canceled", credits: { state: "released" } });
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("survives a worker killed with SIGKILL mid-job: delivered again, one success, credits captured once", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "long.mp4", "video/mp4", makeVideo(12, "640x360"));
    const job = await ctx.api.post("/jobs", { type: "video.color-grade", input: { file_id: body.file.id, preset: "Filmic" } }, u.token);
    let killed: Promise<void> | undefined;
    const watched = await watchJob(ctx.stack.url, u.token, job.body.id, {
      since: 0,
      timeoutMs: 120_000,
      onMessage: (m) => {
        if (m.type === "progress" && m.progress > 5 && !killed) {
          killed = ctx.stack.services.stop("worker-video", "SIGKILL").then(async () => {
            await ctx.stack.services.start("worker-video");
          });
        }
      },
    });
    await killed;
    const events = eventsOf(watched);
    expectGapFree(events);
    expect(events.filter((e) => e.type === "result")).toHaveLength(1);
    const final = (await ctx.api.get(`/jobs/${job.body.id}`, u.token)).body;
    expect(final).toMatchObject({ status: "succeeded", credits: { state: "captured" } });
    expect(final.attempts).toBeGreaterThanOrEqual(2);
    const ledger = (await ctx.api.get("/billing/ledger?limit=100", u.token)).body.data.filter((e: { job_id: string }) => e.job_id === job.body.id);
    expect(ledger.map((e: { kind: string }) => e.kind).sort()).toEqual(["capture", "reserve"]);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 75, reserved: 0 });
  });

  it("dispatches again a job the broker lost", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "p.png", "image/png", await makePng());
    await ctx.stack.services.stop("worker-image");
    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: body.file.id, width: 12 } }, u.token);
    // The broker loses the message (as a crash before its fsync would).
    const nc = await connect(ctx.stack.natsOptions());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge("JOBS");
    expect((await jsm.streams.info("JOBS")).state.messages).toBe(0);
    await ctx.stack.services.start("worker-image");
    const watched = await watchJob(ctx.stack.url, u.token, job.body.id, { since: 0 });
    await nc.close();
    expect(eventsOf(watched).at(-1)).toMatchObject({ type: "result", status: "succeeded" });
    const sql = postgres(ctx.stack.databaseUrl, { max: 1 });
    const [row] = await sql`select dispatch_count from jobs.jobs where id = ${job.body.id}`;
    await sql.end();
    expect(row!.dispatch_count).toBeGreaterThanOrEqual(2);
  });

  it("lets a client that reconnects with `since` miss nothing", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "mid.mp4", "video/mp4", makeVideo(8, "320x240"));
    const job = await ctx.api.post("/jobs", { type: "video.color-grade", input: { file_id: body.file.id } }, u.token);
    const first = await watchJob(ctx.stack.url, u.token, job.body.id, {
      since: 0,
      onMessage: (m, ws) => {
        if (m.type === "progress") ws.close();
      },
    });
    const seen = eventsOf(first);
    const rest = await watchJob(ctx.stack.url, u.token, job.body.id, { since: seen.at(-1).seq });
    const all = [...seen, ...eventsOf(rest)];
    expectGapFree(all);
    expect(all.at(-1)).toMatchObject({ type: "result" });
  });

  it("multiplexes several jobs on one WebSocket, with ping/pong", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "m.png", "image/png", await makePng());
    const jobs = await Promise.all([10, 20].map(async (width) => (await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: body.file.id, width } }, u.token)).body.id as string));
    const ws = new WebSocket(`${ctx.stack.url.replace("http", "ws")}/ws`, { headers: { authorization: `Bearer ${u.token}` } });
    const got: any[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on("open", () => {
        ws.send(JSON.stringify({ type: "ping" }));
        for (const id of jobs) ws.send(JSON.stringify({ type: "subscribe_job", job_id: id, since: 0 }));
      });
      ws.on("message", (d) => {
        got.push(JSON.parse(d.toString()));
        const ended = jobs.filter((id) => got.some((m) => m.job_id === id && (m.type === "result" || m.type === "error")));
        if (ended.length === jobs.length) resolve();
      });
      ws.on("error", reject);
      setTimeout(() => reject(new Error(`timeout; got ${JSON.stringify(got.map((m) => m.type))}`)), 30_000);
    });
    ws.close();
    expect(got.some((m) => m.type === "pong")).toBe(true);
    for (const id of jobs) {
      expect(got.find((m) => m.type === "snapshot" && m.job_id === id)).toBeTruthy();
      expectGapFree(got.filter((m) => m.job_id === id && typeof m.seq === "number"));
    }
  });

  it("forgets a job watched on /ws once the client unsubscribes or leaves, even mid-subscribe", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "w.mp4", "video/mp4", makeVideo(1));
    const job = await ctx.api.post("/jobs", { type: "video.color-grade", input: { file_id: body.file.id } }, u.token);
    const admin = await signUpAdmin(ctx);
    const watchers = async () => Number(/cutroom_job_watchers (\d+)/.exec((await ctx.api.request("GET", "/metrics", { token: admin.token })).body)![1]);
    const ws = new WebSocket(`${ctx.stack.url.replace("http", "ws")}/ws`, { headers: { authorization: `Bearer ${u.token}` } });
    const got: any[] = [];
    ws.on("message", (d) => got.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once("open", r));
    // Unsubscribe in the same breath as subscribing: the snapshot must not follow, nor the listener stay.
    ws.send(JSON.stringify({ type: "subscribe_job", job_id: job.body.id }));
    ws.send(JSON.stringify({ type: "unsubscribe_job", job_id: job.body.id }));
    await sleep(1000);
    expect(got.map((m) => m.type)).toEqual(["unsubscribed"]);
    expect(await watchers()).toBe(0);
    ws.send(JSON.stringify({ type: "subscribe_job", job_id: job.body.id }));
    ws.close();
    await sleep(1000);
    expect(await watchers()).toBe(0);
  });

  it("streams the same events as SSE and resumes from Last-Event-ID", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "s.png", "image/png", await makePng());
    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: body.file.id, width: 9 } }, u.token);
    await watchJob(ctx.stack.url, u.token, job.body.id, { since: 0 });
    const read = async (headers: Record<string, string>) => {
      const res = await fetch(`${ctx.stack.url}/api/v1/jobs/${job.body.id}/events`, { headers: { authorization: `Bearer ${u.token}`, ...headers } });
      expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
      return (await res.text()).split("\n\n").filter(Boolean).map((block) => Object.fromEntries(block.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)])));
    };
    const all = await read({ "last-event-id": "0" });
    expect(all[0]!.event).toBe("snapshot");
    const ids = all.slice(1).map((b) => Number(b.id));
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    const resumed = await read({ "last-event-id": String(ids.at(-2)) });
    expect(resumed.slice(1).map((b) => Number(b.id))).toEqual([ids.at(-1)]);
  });

  it("takes the token as an access_token query parameter on SSE, as a browser's EventSource must, across origins", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "q.png", "image/png", await makePng());
    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: body.file.id, width: 7 } }, u.token);
    await watchJob(ctx.stack.url, u.token, job.body.id, { since: 0 });
    const events = `${ctx.stack.url}/api/v1/jobs/${job.body.id}/events`;
    const res = await fetch(`${events}?access_token=${encodeURIComponent(u.token)}`, { headers: { origin: "https://app.example.com" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const text = await res.text();
    expect(text).toMatch(/^event: snapshot$/m);
    expect(text).toMatch(/^event: result$/m);
    expect((await fetch(`${events}?access_token=not-a-token`)).status).toBe(401);
    expect((await fetch(events)).status).toBe(401);
  });
});
