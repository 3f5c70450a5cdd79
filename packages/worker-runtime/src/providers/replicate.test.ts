import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createReplicateProvider, outputUrls } from "./replicate.ts";

/** A Replicate-compatible API on localhost: a prediction runs for a few polls, then finishes. */
function fakeReplicate() {
  const requests: string[] = [];
  const bodies: unknown[] = [];
  const polls = new Map<string, number>();
  let next = 0;
  const server: Server = createServer(async (req, res) => {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    if (raw) bodies.push(JSON.parse(raw));
    requests.push(`${req.method} ${req.url} ${req.headers.authorization}`);
    const reply = (body: unknown, status = 200) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const create = req.url!.match(/^\/v1\/models\/([^/]+\/[^/]+)\/predictions$/);
    if (req.method === "POST" && create) return reply({ id: `p${++next}`, model: create[1], status: "starting" }, 201);
    const cancel = req.url!.match(/^\/v1\/predictions\/(\w+)\/cancel$/);
    if (req.method === "POST" && cancel) return reply({ id: cancel[1], status: "canceled", output: null });
    const get = req.url!.match(/^\/v1\/predictions\/(\w+)$/);
    if (req.method === "GET" && get) {
      const n = (polls.get(get[1]!) ?? 0) + 1;
      polls.set(get[1]!, n);
      if (n < 3) return reply({ id: get[1], status: "processing", logs: `${n * 40}%|████      | ${n * 4}/10 [00:01<00:01]` });
      return reply({ id: get[1], status: "succeeded", logs: "100%|██████████| 10/10", output: { images: ["https://cdn.example/a.png", "https://cdn.example/b.png"], seed: 7 }, metrics: { predict_time: 2.5 } });
    }
    reply({ detail: "not found" }, 404);
  });
  return { server, requests, bodies };
}

describe("Replicate provider", () => {
  const fake = fakeReplicate();
  let baseUrl: string;
  beforeAll(async () => {
    fake.server.listen(0, "127.0.0.1");
    await once(fake.server, "listening");
    baseUrl = `http://127.0.0.1:${(fake.server.address() as { port: number }).port}/v1`;
  });
  afterAll(() => void fake.server.close());

  it("runs a model at the configured base URL and returns the prediction with its outputs and usage, reporting progress", async () => {
    const provider = createReplicateProvider({ token: "r8_test", baseUrl, pollIntervalMs: 20 });
    const progress: number[] = [];
    const prediction = await provider.run("acme/upscaler", { scale: 2 }, { signal: new AbortController().signal, onProgress: (p) => progress.push(p) });
    expect(outputUrls(prediction.output)).toEqual(["https://cdn.example/a.png", "https://cdn.example/b.png"]);
    expect(prediction).toMatchObject({ status: "succeeded", metrics: { predict_time: 2.5 } });
    expect(progress).toEqual(expect.arrayContaining([40, 80, 100]));
    expect(fake.requests[0]).toBe("POST /v1/models/acme/upscaler/predictions Bearer r8_test");
  });

  it("asks for webhooks when it has a public URL, and each one wakes the wait at once instead of the slow fallback poll", async () => {
    let wake: (() => void) | undefined;
    let unsubscribed = false;
    const provider = createReplicateProvider({
      token: "r8_test",
      baseUrl,
      webhookPollIntervalMs: 60_000,
      wakeups: {
        url: "https://cutroom.example/api/v1/webhooks/replicate",
        subscribe: (_id, w) => {
          wake = w;
          return () => (unsubscribed = true);
        },
      },
    });
    const started = Date.now();
    const ticker = setInterval(() => wake?.(), 20);
    const prediction = await provider.run("acme/upscaler", {}, { signal: new AbortController().signal }).finally(() => clearInterval(ticker));
    expect(prediction.status).toBe("succeeded");
    expect(Date.now() - started).toBeLessThan(5000);
    expect(fake.bodies.at(-1)).toMatchObject({ webhook: "https://cutroom.example/api/v1/webhooks/replicate", webhook_events_filter: ["start", "logs", "completed"] });
    expect(unsubscribed).toBe(true);
  });

  it("cancels the prediction when the job is aborted", async () => {
    const provider = createReplicateProvider({ token: "r8_test", baseUrl, pollIntervalMs: 200 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("job canceled")), 50);
    await expect(provider.run("acme/upscaler", {}, { signal: controller.signal })).rejects.toThrow("job canceled");
    expect(fake.requests.some((r) => /^POST \/v1\/predictions\/\w+\/cancel/.test(r))).toBe(true);
  });
});
