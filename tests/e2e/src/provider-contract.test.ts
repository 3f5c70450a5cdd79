import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startServices, type ServiceSet } from "@cutroom/devstack";
import { defaultCatalog } from "@cutroom/models";
import { createJobModels, createReplicateProvider, ProviderError, type ModelService } from "@cutroom/worker-runtime";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The provider contract: the calls Cutroom's model layer makes, run against the model emulator
 * always, and against real Replicate when REPLICATE_API_TOKEN is set (a few cents: one Flux Schnell
 * image, a canceled Flux Dev run, a short Llama completion). The emulator passing proves little
 * unless Replicate passes the same suite; run it with a token before relying on a change here.
 */
const root = join(import.meta.dirname, "..", "..", "..");
const token = process.env.REPLICATE_API_TOKEN?.trim();

interface Target {
  service: () => ModelService;
  /** A prompt the provider refuses to run to completion, when it has one on demand. */
  failingPrompt?: string;
}

function contract(name: string, target: () => Target) {
  let tmpDir: string;
  beforeAll(() => {
    tmpDir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "contract-"));
  });
  afterAll(() => rmSync(tmpDir, { recursive: true, force: true }));

  const models = (signal = new AbortController().signal) =>
    createJobModels({
      service: target().service(),
      tmpDir,
      signal,
      progress: () => {},
      uploadOutput: () => Promise.reject(new Error("the contract never uploads")),
      log: { info: () => {} },
    });

  it(`${name}: runs a text-to-image model and gives its image, prediction id and predict_time`, async () => {
    const m = models();
    const run = await m.predict({ jobType: "image.generate", quality: "fast", input: { prompt: "a red circle on white", num_outputs: 1, aspect_ratio: "1:1" }, filename: "image" });
    expect(run.downloads).toHaveLength(1);
    const meta = await sharp(run.downloads[0]!.path).metadata();
    expect(meta.width).toBeGreaterThan(0);
    expect(run.provider).toMatchObject({ model: "black-forest-labs/flux-schnell", prediction_id: expect.any(String), predict_time_s: expect.any(Number) });
    expect(run.provider.list_price_usd).toBeCloseTo(0.003, 6);
  }, 180_000);

  it(`${name}: a language model answers as a list of text tokens`, async () => {
    const run = await models().predict({ jobType: "text.generate", quality: "fast", output: "text", input: { prompt: "Say hello in one word.", max_tokens: 8 } });
    expect(Array.isArray(run.output)).toBe(true);
    expect(run.text!.length).toBeGreaterThan(0);
  }, 180_000);

  it(`${name}: an abort cancels the prediction upstream`, async () => {
    const controller = new AbortController();
    const svc = target().service();
    let id: string | undefined;
    const running = svc.client!.run("black-forest-labs/flux-dev", { prompt: "[emulator:slow] a long render", num_inference_steps: 50 }, {
      signal: controller.signal,
      onCreated: (created) => {
        id = created;
        setTimeout(() => controller.abort(new Error("canceled by the test")), 200);
      },
    });
    await expect(running).rejects.toThrow("canceled by the test");
    expect(id).toBeTruthy();
    const res = await fetch(`${baseOf(svc)}/predictions/${id}`, { headers: { authorization: `Bearer ${tokenOf(svc)}` } });
    const prediction = (await res.json()) as { status: string };
    expect(["canceled", "succeeded"]).toContain(prediction.status);
    // Replicate may finish a fast model before the cancel lands; the emulator's slow run never does.
    if (name === "emulator") expect(prediction.status).toBe("canceled");
  }, 180_000);

  it(`${name}: refuses an unknown model as the provider's answer, not an outage`, async () => {
    const svc = target().service();
    const err = await svc.client!.run("cutroom-nobody/no-such-model", { prompt: "x" }, { signal: new AbortController().signal }).catch((e) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err.retryable).toBe(false);
  }, 60_000);

  it(`${name}: a failed prediction is PROVIDER_ERROR, never retried`, async (t) => {
    const failing = target().failingPrompt;
    if (!failing) return t.skip();
    const err = await models().predict({ jobType: "image.generate", quality: "fast", input: { prompt: failing } }).catch((e) => e);
    expect(err).toMatchObject({ code: "PROVIDER_ERROR", retryable: false });
  }, 60_000);
}

// The provider's own base URL and token, for reading a prediction as Replicate's API shows it.
const targets = new Map<ModelService, { base: string; token: string }>();
const baseOf = (svc: ModelService) => targets.get(svc)!.base;
const tokenOf = (svc: ModelService) => targets.get(svc)!.token;
function serviceFor(base: string, auth: string, synthetic: boolean): ModelService {
  const client = createReplicateProvider({ token: auth, baseUrl: base, pollIntervalMs: synthetic ? 100 : 1000, name: synthetic ? "emulator" : "replicate", synthetic, fileEncoding: synthetic ? "data-uri" : "default" });
  const outputHosts = [new URL(base).host, "replicate.delivery", "*.replicate.delivery"];
  const svc: ModelService = { catalog: defaultCatalog(), provider: synthetic ? "emulator" : "replicate", client, maxOutputBytes: 100_000_000, outputHosts };
  targets.set(svc, { base, token: auth });
  return svc;
}

describe("provider contract: the model emulator", () => {
  let services: ServiceSet;
  let base = "";
  beforeAll(async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "emulator-"));
    services = await startServices({
      root,
      apps: ["model-emulator"],
      logDir: join(dir, "logs"),
      env: { MODEL_EMULATOR_PORT: String(port), MODEL_EMULATOR_HOST: "127.0.0.1", MODEL_EMULATOR_DIR: join(dir, "outputs"), LOG_LEVEL: "warn" },
    });
    base = `http://127.0.0.1:${port}/v1`;
  });
  afterAll(async () => services?.stopAll());
  contract("emulator", () => ({ service: () => serviceFor(base, "contract-test", true), failingPrompt: "[emulator:fail] a doomed picture" }));
});

if (!token) console.info("provider contract against real Replicate: skipped, REPLICATE_API_TOKEN is not set");
describe.skipIf(!token)(`provider contract: real Replicate${token ? "" : " (skipped: set REPLICATE_API_TOKEN to run it)"}`, () => {
  const base = process.env.REPLICATE_BASE_URL ?? "https://api.replicate.com/v1";
  contract("replicate", () => ({ service: () => serviceFor(base, token!, false) }));
});
