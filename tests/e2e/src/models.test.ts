import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { makePng } from "./media.ts";
import { useStack } from "./stack.ts";
import { jobHelpers } from "./jobs.ts";

/*
 * Model-backed jobs through the gateway, with the model emulator (apps/model-emulator) as the
 * provider: a process of its own speaking Replicate's HTTP API, as `npm start` runs it without a token.
 */
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "model-emulator", "gateway"] });

const jobs = jobHelpers(ctx);
const { download, upstream } = jobs;
/** An image.generate job, followed to its end. */
const runJob = (token: string, input: Record<string, unknown>) => jobs.runJob(token, "image.generate", input);

describe("image.generate against the model emulator, end to end", () => {
  it("generates two images of the asked size, in order, charges the quoted credits and says the outputs are synthetic", async () => {
    const u = await ctx.api.signUp();
    const input = { prompt: "a lighthouse at dusk", num_images: 2, aspect_ratio: "16:9", seed: 42 };
    const estimate = await ctx.api.post("/jobs/estimate", { type: "image.generate", input }, u.token);
    expect(estimate.body).toMatchObject({ credits: 4, eta_seconds: expect.any(Number) });

    const run = await runJob(u.token, input);
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    expect(run.events.filter((e) => e.type === "progress").length).toBeGreaterThan(1);
    const files = run.final.result.files as { file_id: string; filename: string; content_type: string }[];
    expect(files.map((f) => [f.filename, f.content_type])).toEqual([
      ["image-1.png", "image/png"],
      ["image-2.png", "image/png"],
    ]);
    const pictures = await Promise.all(files.map((f) => download(u.token, f.file_id)));
    for (const bytes of pictures) {
      const meta = await sharp(bytes).metadata();
      expect([meta.width, meta.height, meta.format]).toEqual([1344, 768, "png"]);
    }
    // Two pictures, not one twice.
    expect(pictures[0]!.equals(pictures[1]!)).toBe(false);

    expect(run.final.result.provider).toMatchObject({
      name: "emulator",
      model: "black-forest-labs/flux-schnell",
      prediction_id: expect.any(String),
      predict_time_s: expect.any(Number),
      cost_usd: 0,
      list_price_usd: 0.006,
      synthetic: true,
    });
    expect(await upstream(run.final.result.provider.prediction_id)).toMatchObject({ status: "succeeded" });
    expect(run.final).toMatchObject({ credits: { amount: 4, state: "captured" }, provider_cost_usd: 0 });
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 96, reserved: 0 });
    // Outputs are Cutroom's files: no provider URL is handed out.
    expect(JSON.stringify(run.final.result)).not.toContain(ctx.stack.emulatorUrl!);
  });

  it("starts from a reference image with SDXL and records both prompts when asked to enhance", async () => {
    const u = await ctx.api.signUp();
    const ref = await ctx.api.upload(u.token, "ref.png", "image/png", await makePng(512, 512));
    const run = await runJob(u.token, { prompt: "a cat", family: "sdxl", quality: "balanced", width: 768, height: 512, reference_file_ids: [ref.body.file.id], enhance_prompt: true });
    expect(run.final.status, JSON.stringify(run.final.error)).toBe("succeeded");
    const meta = await sharp(await download(u.token, run.final.result.files[0].file_id)).metadata();
    expect([meta.width, meta.height]).toEqual([768, 512]);
    expect(run.final.result).toMatchObject({ prompt: "a cat", enhanced_prompt: expect.any(String), provider: { model: expect.stringMatching(/^stability-ai\/sdxl:/) } });
    expect(run.final.result.enhanced_prompt).not.toBe("a cat");
    expect(run.final.result.provider_runs.map((r: { model: string }) => r.model)).toEqual(["meta/meta-llama-3-8b-instruct", expect.stringMatching(/^stability-ai\/sdxl:/)]);
  });

  it("cancels a running generation: the prediction is canceled upstream and the credits come back", async () => {
    const u = await ctx.api.signUp();
    await jobs.cancelMidPrediction(u.token, "image.generate", { prompt: "[emulator:slow] a very long render" });
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("fails the job with PROVIDER_ERROR when the model fails, and gives the credits back", async () => {
    const u = await ctx.api.signUp();
    const run = await runJob(u.token, { prompt: "[emulator:fail] a doomed picture", num_images: 3 });
    expect(run.final).toMatchObject({ status: "failed", error: { code: "PROVIDER_ERROR" }, credits: { state: "released" }, attempts: 1 });
    expect(run.final.error.message).toMatch(/black-forest-labs\/flux-schnell/);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("shows on /health that the emulator serves, and lists image.generate's levels and prices", async () => {
    const health = await ctx.api.request("GET", "/health");
    expect(health.body.checks.models).toMatchObject({ status: "up", provider: "emulator" });
    const types = await ctx.api.get("/job-types");
    const generate = types.body.data.find((t: { type: string }) => t.type === "image.generate");
    expect(generate.models).toContainEqual(expect.objectContaining({ quality: "fast", variant: null, model: "black-forest-labs/flux-schnell", price: { usd_per_output: 0.003 }, available: true }));
    expect(generate.models).toContainEqual(expect.objectContaining({ quality: "economical", alias_of: "fast" }));
    expect(types.body.data.find((t: { type: string }) => t.type === "image.resize").models).toBeNull();
  });
});
