import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultCatalog } from "@cutroom/models";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { JobFailure, RetryableFailure } from "./job-failure.ts";
import { createJobModels, noModels, totalCostUsd, type ModelService } from "./models.ts";
import { createReplicateProvider } from "./providers/replicate.ts";

/*
 * ctx.models against a small server speaking Replicate's protocol: predictions that progress over
 * a few polls and end as told by the prompt, and the output files it serves itself.
 */
interface Stored {
  id: string;
  model: string;
  input: Record<string, unknown>;
  polls: number;
  status: string;
}
function replicateStandIn() {
  const predictions = new Map<string, Stored>();
  let next = 0;
  let failCreates = 0;
  const server: Server = createServer(async (req, res) => {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const url = req.url!;
    const reply = (body: unknown, status = 200) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    if (url === "/redirect") {
      res.writeHead(302, { location: `http://127.0.0.2:${(server.address() as { port: number }).port}/files/secret.png` });
      return res.end();
    }
    if (url.startsWith("/files/")) {
      const bytes = url.endsWith(".png") ? PNG : Buffer.from("not an image");
      res.writeHead(200, { "content-type": url.endsWith(".png") ? "image/png" : "application/octet-stream", "content-length": bytes.length });
      return res.end(bytes);
    }
    const create = url.match(/^\/v1\/models\/([^/]+\/[^/]+)\/predictions$/);
    const createByVersion = url === "/v1/predictions" && req.method === "POST";
    if (req.method === "POST" && (create || createByVersion)) {
      if (failCreates > 0) {
        failCreates--;
        return reply({ detail: "upstream overloaded" }, 503);
      }
      const body = JSON.parse(raw) as { input: Record<string, unknown>; version?: string };
      const id = `p${++next}`;
      predictions.set(id, { id, model: create?.[1] ?? `version:${body.version}`, input: body.input, polls: 0, status: "starting" });
      return reply({ id, status: "starting", logs: "" }, 201);
    }
    const cancel = url.match(/^\/v1\/predictions\/(\w+)\/cancel$/);
    if (req.method === "POST" && cancel) {
      const p = predictions.get(cancel[1]!)!;
      p.status = "canceled";
      return reply({ id: p.id, status: "canceled" });
    }
    const get = url.match(/^\/v1\/predictions\/(\w+)$/);
    if (req.method === "GET" && get) {
      const p = predictions.get(get[1]!);
      if (!p) return reply({ detail: "not found" }, 404);
      if (p.status === "canceled") return reply({ id: p.id, status: "canceled" });
      p.polls++;
      const prompt = String(p.input.prompt ?? "");
      const slow = prompt.includes("[slow]");
      if (p.polls < (slow ? 1000 : 3)) return reply({ id: p.id, status: "processing", logs: `${p.polls * 30}%|███       | ${p.polls * 3}/10 [00:01<00:02]` });
      if (prompt.includes("[fail]")) return reply({ id: p.id, status: "failed", error: "CUDA out of memory", metrics: { predict_time: 1.5 } });
      if (prompt.includes("[text]")) return reply({ id: p.id, status: "succeeded", output: ["A ", "red ", "fox"], metrics: { predict_time: 0.4, input_token_count: 100, output_token_count: 3 } });
      const n = Number(p.input.num_outputs ?? 1);
      const ext = prompt.includes("[garbage]") ? "bin" : "png";
      // An output at an internal address the provider does not serve from, directly or by a redirect.
      if (prompt.includes("[elsewhere]")) return reply({ id: p.id, status: "succeeded", output: [`http://127.0.0.2:${(server.address() as { port: number }).port}/files/secret.png`], metrics: { predict_time: 1 } });
      if (prompt.includes("[redirect]")) return reply({ id: p.id, status: "succeeded", output: [`${base}/redirect`], metrics: { predict_time: 1 } });
      return reply({ id: p.id, status: "succeeded", output: Array.from({ length: n }, (_, i) => `${base}/files/${p.id}/out-${i}.${ext}`), metrics: { predict_time: 2 } });
    }
    reply({ detail: "not found" }, 404);
  });
  return { server, predictions, failNextCreates: (n: number) => (failCreates = n) };
}

// A 1×1 PNG.
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAADElEQVQImWP4//8/AAX+Av5Y8msOAAAAAElFTkSuQmCC", "base64");

const standIn = replicateStandIn();
let baseUrl: string;
let tmpDir: string;
beforeAll(async () => {
  standIn.server.listen(0, "127.0.0.1");
  await once(standIn.server, "listening");
  baseUrl = `http://127.0.0.1:${(standIn.server.address() as { port: number }).port}/v1`;
});
afterAll(() => void standIn.server.close());
beforeEach(async () => {
  tmpDir = await mkdtemp(join(tmpdir(), "models-test-"));
});
afterEach(() => rm(tmpDir, { recursive: true, force: true }));

function service(synthetic = true): ModelService {
  const client = createReplicateProvider({ token: "t", baseUrl, pollIntervalMs: 10, name: synthetic ? "emulator" : "replicate", synthetic, fileEncoding: "data-uri" });
  return { catalog: defaultCatalog(), provider: synthetic ? "emulator" : "replicate", client, maxOutputBytes: 1_000_000, outputHosts: [new URL(baseUrl).host] };
}

function jobModels(svc: ModelService, signal = new AbortController().signal) {
  const progress: number[] = [];
  const uploads: { filename: string; contentType: string; bytes: Buffer; check?: boolean }[] = [];
  const models = createJobModels({
    service: svc,
    tmpDir,
    signal,
    progress: (p) => progress.push(p),
    uploadOutput: async (path, filename, contentType, opts) => {
      uploads.push({ filename, contentType, bytes: await readFile(path), check: opts?.check });
      return { file_id: "00000000-0000-4000-8000-00000000000" + uploads.length, filename, content_type: contentType, size: 1 };
    },
    log: { info: () => {} },
  });
  return { models, progress, uploads };
}

describe("ctx.models", () => {
  it("runs the catalog's model with its fixed params, maps progress into the job's, uploads the outputs in order for storage to check", async () => {
    const { models, progress, uploads } = jobModels(service());
    const run = await models.run({ jobType: "image.generate", quality: "economical", variant: "sdxl", input: { prompt: "a fox", num_outputs: 2, num_inference_steps: 999 }, filename: "image", progress: [10, 80] });
    const sent = [...standIn.predictions.values()].at(-1)!;
    expect(sent.model).toBe("version:7762fd07cf82c948538e41f63f77d685e02b063e37e496e96eefd46c929f9bdc");
    expect(sent.input).toMatchObject({ prompt: "a fox", num_outputs: 2, num_inference_steps: 20 });
    expect(uploads.map((u) => [u.filename, u.contentType, u.check])).toEqual([
      ["image-1.png", "image/png", true],
      ["image-2.png", "image/png", true],
    ]);
    expect(uploads[0]!.bytes.equals(PNG)).toBe(true);
    expect(run.files).toHaveLength(2);
    expect(progress[0]).toBeGreaterThanOrEqual(10);
    expect(progress.some((p) => p > 10 && p < 80)).toBe(true);
    expect(progress.at(-1)).toBe(80);
    expect(run.provider).toEqual({ name: "emulator", model: sent.model.replace("version:", "stability-ai/sdxl:"), prediction_id: sent.id, predict_time_s: 2, cost_usd: 0, list_price_usd: 0.00195, synthetic: true });
  });

  it("prices a real provider's run from the catalog and sums the job's runs", async () => {
    const { models } = jobModels(service(false));
    const image = await models.run({ jobType: "image.generate", quality: "fast", input: { prompt: "a fox", num_outputs: 3 } });
    expect(image.provider).toMatchObject({ name: "replicate", model: "black-forest-labs/flux-schnell", cost_usd: 0.009, synthetic: false });
    const text = await models.predict({ jobType: "prompt.enhance", quality: "fast", output: "text", input: { prompt: "[text] a fox" } });
    expect(text.text).toBe("A red fox");
    expect(text.downloads).toEqual([]);
    expect(text.provider.cost_usd).toBe(0.000006);
    expect(totalCostUsd(models.runs)).toBe(0.009006);
  });

  it("fails the job with PROVIDER_ERROR, not retried, when the prediction fails, keeping its cost", async () => {
    const { models } = jobModels(service(false));
    const err = await models.run({ jobType: "image.generate", quality: "high", input: { prompt: "[fail] a fox" } }).catch((e) => e);
    expect(err).toBeInstanceOf(JobFailure);
    expect(err).toMatchObject({ code: "PROVIDER_ERROR", message: expect.stringContaining("CUDA out of memory") });
    expect(models.runs).toHaveLength(1);
    expect(models.runs[0]).toMatchObject({ predict_time_s: 1.5 });
  });

  it("retries when the provider is down, as PROVIDER_ERROR once the attempts run out", async () => {
    const { models } = jobModels(service());
    standIn.failNextCreates(10);
    const err = await models.run({ jobType: "image.generate", quality: "fast", input: { prompt: "a fox" } }).catch((e) => e);
    standIn.failNextCreates(0);
    expect(err).toBeInstanceOf(RetryableFailure);
    expect(err).toMatchObject({ code: "PROVIDER_ERROR", message: expect.stringMatching(/provider is unavailable.*HTTP 503/) });
  });

  it("cancels the prediction upstream when the job is aborted", async () => {
    const controller = new AbortController();
    const { models } = jobModels(service(), controller.signal);
    const running = models.run({ jobType: "image.generate", quality: "fast", input: { prompt: "[slow] a fox" } });
    await new Promise((r) => setTimeout(r, 100));
    controller.abort(new Error("job canceled"));
    await expect(running).rejects.toThrow("job canceled");
    expect([...standIn.predictions.values()].at(-1)!.status).toBe("canceled");
  });

  it("refuses a hosted model without a provider, and a local engine it cannot run itself", async () => {
    const { models } = jobModels(noModels());
    await expect(models.run({ jobType: "image.generate", quality: "fast", input: { prompt: "x" } })).rejects.toMatchObject({ code: "PROVIDER_UNAVAILABLE" });
    expect(models.resolve("audio.tts", "standard")).toMatchObject({ provider: "local", model: "espeak-ng" });
    expect(models.local(models.resolve("audio.tts", "standard"))).toMatchObject({ name: "local", model: "espeak-ng", cost_usd: 0, synthetic: false });
    expect(() => models.resolve("image.generate", "ultra")).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
  });

  it("sends input files to the model inline, and stops an output larger than allowed", async () => {
    const { models } = jobModels({ ...service(), maxOutputBytes: 10 });
    const ref = join(tmpDir, "ref.png");
    await import("node:fs/promises").then((fs) => fs.writeFile(ref, PNG));
    const err = await models
      .run({ jobType: "image.generate", quality: "high", input: { prompt: "a fox" }, files: { image: { path: ref, filename: "ref.png", contentType: "image/png", size: PNG.length } } })
      .catch((e) => e);
    expect([...standIn.predictions.values()].at(-1)!.input.image).toBe(`data:image/png;base64,${PNG.toString("base64")}`);
    expect(err).toMatchObject({ code: "PROVIDER_ERROR", message: expect.stringContaining("larger than 10 bytes") });
  });

  it("never fetches an output the provider names at another host, nor follows a redirect there", async () => {
    const fetched = (await import("node:fs/promises")).readdir;
    for (const marker of ["[elsewhere]", "[redirect]"]) {
      const { models, uploads } = jobModels(service());
      const err = await models.run({ jobType: "image.generate", quality: "high", input: { prompt: `a fox ${marker}` } }).catch((e) => e);
      expect(err).toMatchObject({ code: "PROVIDER_ERROR", message: "a model output is not at a host the provider serves outputs from" });
      expect(uploads).toEqual([]);
    }
    expect(await fetched(tmpDir)).toEqual([]);
  });
});
