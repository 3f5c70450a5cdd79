import { randomUUID } from "node:crypto";
import type { Caller } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startJobStack, testImage, type JobStack } from "./test-stack.ts";

const image = (over: Record<string, unknown> = {}) => ({ type: "image.generate", input: { prompt: "a red fox in the snow", num_images: 2, ...over } });

describe("job-service: model-backed jobs without a provider", () => {
  let stack: JobStack;
  beforeAll(async () => {
    stack = await startJobStack({ provider: "none" });
  });
  afterAll(async () => stack?.stop());

  it("answers 503 PROVIDER_UNAVAILABLE before reserving anything, for a job and its estimate", async () => {
    const user = await stack.newUser(100);
    const refused = await stack.client.call("job", "create", { body: image() }, { caller: user }).catch((e) => e);
    expect(refused).toMatchObject({ code: "PROVIDER_UNAVAILABLE", status: 503, details: { type: "image.generate", provider: "none", model_use: { job_type: "image.generate", quality: "fast", variant: "flux" } } });
    expect(refused.message).toMatch(/black-forest-labs\/flux-schnell needs a model provider/);
    await expect(stack.client.call("job", "estimate", image(), { caller: user })).rejects.toMatchObject({ code: "PROVIDER_UNAVAILABLE" });
    expect(await stack.balance(user)).toMatchObject({ credits: 100, reserved: 0 });
    expect(await stack.queued("image", "image.generate")).toBe(0);
    // No job was recorded either.
    const list = await stack.client.call("job", "list", { limit: 10, offset: 0 }, { caller: user });
    expect(list.total).toBe(0);
  });

  it("still runs types that need no model", async () => {
    const user = await stack.newUser(100);
    const file_id = await stack.addFile(user, "ready", testImage);
    await expect(stack.client.call("job", "create", { body: { type: "image.resize", input: { file_id, width: 64 } } }, { caller: user })).resolves.toMatchObject({ created: true });
  });
});

describe("job-service: model-backed jobs with a provider", () => {
  let stack: JobStack;
  let user: Caller;
  beforeAll(async () => {
    stack = await startJobStack({ provider: "emulator" });
    // Pro: its jobs stay queued across the tests, and a free user runs one at a time (ADR 031).
    user = await stack.newUser(100, "user", "pro");
  });
  afterAll(async () => stack?.stop());

  it("queues image.generate with credits by image count, quality and size, and estimates its duration from the catalog", async () => {
    const estimate = await stack.client.call("job", "estimate", image(), { caller: user });
    expect(estimate).toMatchObject({ credits: 4, eta_seconds: 3, work: { output_pixels: 1024 * 1024 } });
    expect((await stack.client.call("job", "estimate", image({ quality: "premium", width: 2048, height: 1024, enhance_prompt: true }), { caller: user })).credits).toBe(2 * 8 * 2 + 1);
    expect((await stack.client.call("job", "estimate", image({ family: "wan", num_images: 1 }), { caller: user })).credits).toBe(4);
    const { job } = await stack.client.call("job", "create", { body: image() }, { caller: user });
    expect(job).toMatchObject({ status: "queued", credits: { amount: 4, state: "reserved" }, provider_cost_usd: null, input: { quality: "fast", family: "flux", enhance_prompt: false } });
    await vi.waitFor(async () => expect(await stack.queued("image", "image.generate")).toBe(1), { timeout: 5000, interval: 20 });
  });

  it("checks every reference file: another user's is 422 and reserves nothing", async () => {
    const other = await stack.newUser(100);
    const mine = await stack.addFile(user, "ready", { filename: "ref.png", contentType: "image/png", durationSeconds: null, frameRate: null });
    const theirs = await stack.addFile(other, "ready", { filename: "ref.png", contentType: "image/png", durationSeconds: null, frameRate: null });
    const before = await stack.balance(user);
    await expect(stack.client.call("job", "create", { body: image({ reference_file_ids: [mine, theirs] }) }, { caller: user })).rejects.toMatchObject({
      code: "INVALID_INPUT",
      details: { field: "reference_file_ids", file_id: theirs, reason: "file not found" },
    });
    expect(await stack.balance(user)).toEqual(before);
    const ok = await stack.client.call("job", "estimate", image({ reference_file_ids: [mine] }), { caller: user });
    expect(ok.work.input_pixels).toBe(640 * 480);
  });

  it("records the provider's USD cost reported when the job ends", async () => {
    const { job } = await stack.client.call("job", "create", { body: image({ prompt: `cost ${randomUUID()}` }) }, { caller: user });
    // The first case's job is still queued: the claim serves it first, in the queue's turns (ADR 039).
    expect(await stack.claimInTurn(job.id, "test")).toMatchObject({ run: true, job: { id: job.id } });
    const result = { files: [], provider: { name: "replicate", model: "black-forest-labs/flux-schnell", cost_usd: 0.006 } };
    await stack.client.call("job", "finish", { job_id: job.id, dispatch: 1, outcome: { status: "succeeded", result }, provider_cost_usd: 0.006 });
    expect(await stack.client.call("job", "get", { job_id: job.id }, { caller: user })).toMatchObject({ status: "succeeded", provider_cost_usd: 0.006, credits: { state: "captured" } });
  });
});
