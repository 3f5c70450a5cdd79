// OWASP API10:2023 Unsafe Consumption of APIs. The APIs Cutroom consumes are its own workers' (over
// NATS: claims, results, job events) and the model provider's (Replicate or its emulator: predictions
// and their webhooks). A worker is the likeliest to be compromised: it runs ffmpeg and sharp on users'
// bytes. What it sends is parsed before anything acts on it, and malformed messages neither crash a
// service, nor reach a client, nor spoil the job they name. A webhook is believed only when signed,
// and even then only as "look again": its body is never acted on.
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { expectEnvelope } from "@cutroom/e2e/client";
import { jobHelpers } from "@cutroom/e2e/jobs";
import { useStack } from "@cutroom/e2e/stack";
import { eventsOf, expectGapFree, watchJob } from "@cutroom/e2e/watch";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { deadApps } from "./services.ts";

// The model emulator stands for the provider; with it, the gateway takes the provider's signed webhooks, with a secret the test knows.
const WEBHOOK_SECRET = `whsec_${randomBytes(24).toString("base64")}`;
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "model-emulator", "gateway"],
  env: { REPLICATE_WEBHOOK_SECRET: WEBHOOK_SECRET, MODEL_EMULATOR_WEBHOOK_SECRET: WEBHOOK_SECRET },
});

const opened: NatsConnection[] = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((nc) => nc.close()));
});
/** A connection as the worker's own NATS user: what a compromised worker holds. */
async function connectAsWorker() {
  const nc = await connect({ ...ctx.stack.natsOptions("worker-image"), maxReconnectAttempts: 0 });
  opened.push(nc);
  return nc;
}

const envelope = (body: unknown) => JSON.stringify({ request_id: randomUUID(), caller: null, body });

const { userWithImage, settled } = jobHelpers(ctx);

describe("API10 unsafe consumption of APIs: what a worker sends", () => {
  it("answers a worker's malformed requests with an error and acts on none: services keep serving and jobs keep running", async () => {
    const u = await userWithImage();
    const nc = await connectAsWorker();
    const huge = "x".repeat(256 * 1024);
    const payloads = [
      "not json at all",
      "",
      "null",
      JSON.stringify({ no: "envelope" }),
      envelope(null),
      envelope({ job_id: "not-a-uuid", dispatch: "one", worker: 7 }),
      envelope({ job_id: randomUUID(), dispatch: 1, outcome: { status: "succeeded", result: { files: "all of them" } } }),
      envelope({ job_id: randomUUID(), dispatch: 1e308, outcome: { status: "exploded" } }),
      envelope({ owner_id: u.user_id, file_id: u.fileId.replace(/.$/, "\u0000"), filename: huge, content_type: huge }),
      envelope({ owner_id: [u.user_id], job_id: { $ne: null }, filename: "../../etc/passwd", content_type: "text/plain" }),
    ];
    for (const method of ["svc.job.claim", "svc.job.finish", "svc.storage.inputUrl", "svc.storage.createOutput", "svc.storage.confirmOutput"]) {
      for (const payload of payloads) {
        const reply = (await nc.request(method, payload, { timeout: 5000 })).json<{ ok: boolean; error?: { code: string } }>();
        expect(reply, `${method} ${payload.slice(0, 80)}`).toMatchObject({ ok: false, error: { code: expect.any(String) } });
      }
    }
    expect(deadApps(ctx.stack)).toEqual([]);
    expect((await ctx.api.request("GET", "/health/ready")).status).toBe(200);
    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: u.fileId, width: 8 } }, u.token);
    expect((await settled(job.body.id, u.token)).status).toBe("succeeded");
  });

  it("drops malformed events a worker publishes for a job: watchers never see them, the job is unchanged and still runs, its events stay gap-free", async () => {
    const u = await userWithImage();
    // The job waits in the queue while the forged events arrive.
    await ctx.stack.services.stop("worker-image");
    try {
      const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: u.fileId, width: 8 } }, u.token);
      expect(job.status).toBe(202);
      const subject = `jobs.events.${job.body.id}`;
      const nc = await connect({ ...ctx.stack.natsOptions("worker-image"), maxReconnectAttempts: 0 });
      opened.push(nc);
      const at = new Date().toISOString();
      for (const forged of [
        "not json",
        JSON.stringify({ type: "result" }),
        JSON.stringify({ job_id: job.body.id, seq: 1, timestamp: at, type: "progress", progress: 1e9 }),
        JSON.stringify({ job_id: job.body.id, seq: "2", timestamp: at, type: "status", status: "hacked" }),
        JSON.stringify({ job_id: job.body.id, seq: 3, timestamp: "yesterday", type: "log", level: "panic", message: 42 }),
      ]) {
        nc.publish(subject, forged);
      }
      await nc.flush();
      await new Promise((r) => setTimeout(r, 500));
      expect((await ctx.api.get(`/jobs/${job.body.id}`, u.token)).body).toMatchObject({ status: "queued", progress: 0, result: null, error: null });

      // A watcher from the start: once the worker is back, it sees the job run to its end, and nothing forged.
      const watched = watchJob(ctx.stack.url, u.token, job.body.id, { since: 0, timeoutMs: 30_000 });
      await ctx.stack.services.start("worker-image");
      const w = await watched;
      expect(w.closeCode).toBe(1000);
      const events = eventsOf(w);
      expectGapFree(events);
      expect(events.at(-1)).toMatchObject({ type: "result", status: "succeeded" });
      expect(events.filter((e) => e.type === "progress").every((e) => e.progress >= 0 && e.progress <= 100)).toBe(true);
      expect((await settled(job.body.id, u.token)).status).toBe("succeeded");
    } finally {
      if (deadApps(ctx.stack).includes("worker-image")) await ctx.stack.services.start("worker-image");
    }
    expect(deadApps(ctx.stack)).toEqual([]);
  });
});

/** A webhook as Replicate sends it (Standard Webhooks): `v1,<base64 HMAC-SHA256 of id.timestamp.body>`. */
function signedWebhook(body: string, opts: { secret?: string; timestamp?: number } = {}) {
  const id = `msg_${randomUUID()}`;
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const key = Buffer.from((opts.secret ?? WEBHOOK_SECRET).replace(/^whsec_/, ""), "base64");
  const signature = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": `v1,${signature}` };
}

describe("API10 unsafe consumption of APIs: what the model provider sends", () => {
  const webhook = (body: string, headers: Record<string, string>) => ctx.api.request("POST", "/api/v1/webhooks/replicate", { body, headers });

  it("believes a webhook only when signed with the secret and recent: unsigned, forged, re-signed or stale ones are 401", async () => {
    const body = JSON.stringify({ id: "abc123", status: "succeeded", output: ["https://example.com/out.png"] });
    expectEnvelope(await webhook(body, { "content-type": "application/json" }), 401, "UNAUTHORIZED");
    expectEnvelope(await webhook(body, signedWebhook(body, { secret: `whsec_${randomBytes(24).toString("base64")}` })), 401, "UNAUTHORIZED");
    // A captured webhook with another body under its signature.
    expectEnvelope(await webhook(body.replace("abc123", "abc124"), signedWebhook(body)), 401, "UNAUTHORIZED");
    expectEnvelope(await webhook(body, signedWebhook(body, { timestamp: Math.floor(Date.now() / 1000) - 10 * 60 })), 401, "UNAUTHORIZED");
    expect((await webhook(body, signedWebhook(body))).status).toBe(200);
  });

  it("relays nothing of a signed webhook but a well-formed prediction id: no NATS wildcard, and its URLs are never fetched", async () => {
    const hits: string[] = [];
    const internal = createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.end();
    });
    await new Promise<void>((r) => internal.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(internal.address() as { port: number }).port}`;
    try {
      const nc = await connect({ ...ctx.stack.natsOptions(), maxReconnectAttempts: 0 });
      opened.push(nc);
      const relayed: string[] = [];
      const sub = nc.subscribe("models.webhook.>", {
        callback: (_err, m) => {
          relayed.push(m.subject);
        },
      });
      for (const id of ["*", ">", "abc.>", "abc def", "../x", "a".repeat(65), 42]) {
        const body = JSON.stringify({ id, status: "succeeded", output: [`${url}/latest/meta-data`] });
        expectEnvelope(await webhook(body, signedWebhook(body)), 400, "BAD_REQUEST");
      }
      const body = JSON.stringify({ id: "p0a1b2c3", status: "succeeded", output: [`${url}/latest/meta-data`], urls: { get: `${url}/v1/predictions/p0a1b2c3` } });
      expect((await webhook(body, signedWebhook(body))).status).toBe(200);
      await nc.flush();
      await new Promise((r) => setTimeout(r, 500));
      sub.unsubscribe();
      expect(relayed).toEqual(["models.webhook.p0a1b2c3"]);
      expect(hits).toEqual([]);
    } finally {
      internal.close();
    }
  });
});
