import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { makePng, makeVideo } from "./media.ts";
import { watchJob } from "./watch.ts";
import { useStack } from "./stack.ts";

interface Span {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
}

/** An OTLP/HTTP receiver taking JSON bodies, as a collector would: every span it was sent, with its service. */
async function startReceiver(): Promise<{ server: Server; url: string; spans: Span[] }> {
  const spans: Span[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url === "/v1/traces" && req.headers["content-type"]?.startsWith("application/json")) {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        for (const rs of body.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a: { key: string }) => a.key === "service.name")?.value?.stringValue ?? "?";
          for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? "", name: s.name, kind: s.kind });
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans };
}

const receiver = await startReceiver();
afterAll(() => new Promise<void>((resolve) => receiver.server.close(() => resolve())));

const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"],
  env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "100" },
});

// OTLP's span kinds: SPAN_KIND_SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5.
const INTERNAL = 1;
const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

describe("traces across the stack", () => {
  it("puts a job from its POST to its result in one trace: gateway, job-service and the worker's stages and sharp call, each span under its caller", async () => {
    const user = await ctx.api.signUp();
    const uploaded = await ctx.api.upload(user.token, "in.png", "image/png", await makePng());
    expect(uploaded.status).toBe(200);

    // The client's own trace: the job's spans must all join it.
    const traceId = randomBytes(16).toString("hex");
    const clientSpanId = randomBytes(8).toString("hex");
    const job = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: uploaded.body.file.id } }, user.token, { traceparent: `00-${traceId}-${clientSpanId}-01` });
    expect(job.status, JSON.stringify(job.body)).toBe(202);
    const watched = await watchJob(ctx.stack.url, user.token, job.body.id, { since: 0, timeoutMs: 60_000 });
    expect(watched.closeCode).toBe(1000);
    expect((await ctx.api.get(`/jobs/${job.body.id}`, user.token)).body.status).toBe("succeeded");

    // Spans go out in batches a moment after they end: wait for the worker's report of the ending and job-service's answer to it.
    const inTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
    const has = (service: string, name: string, kind: number) => inTrace().find((s) => s.service === service && s.name === name && s.kind === kind);
    while (!has("job-service", "job.finish", SERVER) || !has("worker-image", "process image.thumbnail", CONSUMER)) await new Promise((r) => setTimeout(r, 100));

    const spans = inTrace();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: Span) => byId.get(s.parentSpanId);
    const one = (service: string, name: string, kind: number) => {
      const found = spans.filter((s) => s.service === service && s.name === name && s.kind === kind);
      expect(found, `${service} ${name}`).toHaveLength(1);
      return found[0]!;
    };

    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(["gateway", "job-service", "storage-service", "worker-image"]));
    // Every span's parent is in the trace, but the request's own, which is the client's span.
    const request = one("gateway", "POST /api/v1/jobs", SERVER);
    expect(request.parentSpanId).toBe(clientSpanId);
    for (const s of spans) if (s !== request) expect(parentOf(s), `parent of ${s.service} ${s.name}`).toBeDefined();

    // gateway → job-service over NATS request/reply.
    const createCall = one("gateway", "job.create", CLIENT);
    expect(parentOf(createCall)).toBe(request);
    const create = one("job-service", "job.create", SERVER);
    expect(parentOf(create)).toBe(createCall);

    // job-service's dispatch on JetStream → the worker's delivery.
    const dispatch = spans.find((s) => s.service === "job-service" && s.name === "publish jobs.run" && s.kind === PRODUCER)!;
    expect(dispatch).toBeDefined();
    expect(parentOf(dispatch)).toBe(create);
    const delivery = one("worker-image", "process image.thumbnail", CONSUMER);
    expect(parentOf(delivery)).toBe(dispatch);

    // The worker's claim and finish, answered by job-service in the same trace.
    for (const method of ["job.claim", "job.finish"]) {
      const call = one("worker-image", method, CLIENT);
      expect(parentOf(call)).toBe(delivery);
      expect(parentOf(one("job-service", method, SERVER))).toBe(call);
    }

    // Its stages, and sharp's resize inside the process stage.
    for (const stage of ["fetch", "process", "upload"]) expect(parentOf(one("worker-image", `stage ${stage}`, INTERNAL))).toBe(delivery);
    expect(parentOf(one("worker-image", "sharp resize", INTERNAL))).toBe(one("worker-image", "stage process", INTERNAL));

    // Its events: the queued one from the creation, the running one from the claim (a job this quick has no stage event of the worker's).
    expect(spans.some((s) => s.service === "job-service" && s.name === "publish jobs.events" && parentOf(s) === create)).toBe(true);
    expect(spans.some((s) => s.service === "job-service" && s.name === "publish jobs.events" && parentOf(s) === one("job-service", "job.claim", SERVER))).toBe(true);
  });

  it("runs a job dispatched later (held for a concurrent-job slot) in its own POST's trace, not in that of the request that freed the slot", async () => {
    // A free user has one slot; no video worker runs here, so the video job holds it until canceled.
    const user = await ctx.api.signUp();
    const clip = await ctx.api.upload(user.token, "clip.mp4", "video/mp4", makeVideo(1));
    const png = await ctx.api.upload(user.token, "in.png", "image/png", await makePng());
    const first = await ctx.api.post("/jobs", { type: "video.thumbnails", input: { file_id: clip.body.file.id } }, user.token);
    expect(first.status).toBe(202);
    const traceId = randomBytes(16).toString("hex");
    const held = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: png.body.file.id } }, user.token, { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` });
    expect(held.body).toMatchObject({ status: "queued", queue_reason: "concurrency_limit" });
    const watching = watchJob(ctx.stack.url, user.token, held.body.id, { since: 0, timeoutMs: 60_000 });

    const cancelTrace = randomBytes(16).toString("hex");
    const cancel = await ctx.api.request("POST", `/api/v1/jobs/${first.body.id}/cancel`, { token: user.token, json: {}, headers: { traceparent: `00-${cancelTrace}-${randomBytes(8).toString("hex")}-01` } });
    expect(cancel.status).toBe(200);
    expect((await watching).closeCode).toBe(1000);

    const delivery = () => receiver.spans.find((s) => s.service === "worker-image" && s.name === "process image.thumbnail" && (s.traceId === traceId || s.traceId === cancelTrace));
    while (!delivery()) await new Promise((r) => setTimeout(r, 100));
    expect(delivery()!.traceId).toBe(traceId);
  });
});
