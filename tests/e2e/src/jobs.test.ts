import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { makeVideo } from "./media.ts";
import { jobHelpers } from "./jobs.ts";
import { useStack } from "./stack.ts";

// No workers in this stack: jobs stay queued, so what is asserted here is the API's own doing.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] });

const { userWithImage } = jobHelpers(ctx);

describe("job types", () => {
  it("lists every registered type with its input schema, presets and cost", async () => {
    const res = await ctx.api.get("/job-types");
    expect(res.status).toBe(200);
    const byType = Object.fromEntries(res.body.data.map((t: { type: string }) => [t.type, t]));
    expect(Object.keys(byType)).toEqual(expect.arrayContaining(["image.resize", "image.thumbnail", "video.color-grade", "audio.cleanup"]));
    const grade = byType["video.color-grade"];
    expect(Object.keys(grade.presets)).toEqual(["Filmic", "Warm", "Cool", "Nollywood-Standard"]);
    expect(grade.input_schema.properties.exposure).toMatchObject({ minimum: -3, maximum: 3 });
    expect(grade.input_schema.properties.saturation).toMatchObject({ minimum: 0, maximum: 200 });
    expect(byType["audio.cleanup"].input_schema.properties.preset.enum).toEqual(["Light Denoise", "Heavy Denoise", "Dialogue Enhance"]);
    expect(grade.cost.description).toMatch(/credits/);
  });
});

describe("jobs", () => {
  it("enqueues a job: 202 with the job, stored and readable, its credits reserved", async () => {
    const u = await userWithImage();
    const res = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: u.fileId, width: 32, format: "webp" } }, u.token);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ type: "image.resize", status: "queued", progress: 0, result: null, error: null, credits: { amount: 1, state: "reserved" } });
    expect(res.body.input).toMatchObject({ width: 32, format: "webp", fit: "cover" });
    const got = await ctx.api.get(`/jobs/${res.body.id}`, u.token);
    expect(got.body.id).toBe(res.body.id);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 99, reserved: 1, tier: "free" });
  });

  it("makes retries safe with Idempotency-Key: same body → same job, other body → 409", async () => {
    const u = await userWithImage();
    const key = randomUUID();
    const body = { type: "image.resize", input: { file_id: u.fileId, width: 16 } };
    const a = await ctx.api.post("/jobs", body, u.token, { "idempotency-key": key });
    const b = await ctx.api.post("/jobs", body, u.token, { "idempotency-key": key });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.id).toBe(a.body.id);
    const other = await ctx.api.post("/jobs", { ...body, input: { ...body.input, width: 17 } }, u.token, { "idempotency-key": key });
    expectEnvelope(other, 409, "IDEMPOTENCY_CONFLICT");
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(1);
    expect((await ctx.api.get("/billing/credits", u.token)).body.credits).toBe(99);
  });

  it("checks the input against the type's schema: 422 with the offending fields", async () => {
    const u = await userWithImage();
    const bad = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: u.fileId, width: -5, format: "bmp" } }, u.token);
    expectEnvelope(bad, 422, "INVALID_INPUT");
    const paths = bad.body.error.details.fields.map((f: { path: string }) => f.path);
    expect(paths).toEqual(expect.arrayContaining(["width", "format"]));
    expectEnvelope(await ctx.api.post("/jobs", { type: "video.teleport", input: {} }, u.token), 422);
    expectEnvelope(await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: randomUUID(), width: 10 } }, u.token), 422);
    expect((await ctx.api.get("/billing/credits", u.token)).body.credits).toBe(100);
  });

  it("refuses a job with 402 INSUFFICIENT_CREDITS once the credits run out", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "clip.mp4", "video/mp4", makeVideo());
    const enqueue = () => ctx.api.post("/jobs", { type: "video.color-grade", input: { file_id: body.file.id, preset: "Warm" } }, u.token);
    for (let i = 0; i < 4; i++) expect((await enqueue()).status).toBe(202);
    const refused = await enqueue();
    expectEnvelope(refused, 402, "INSUFFICIENT_CREDITS");
    expect(refused.body.error.details).toMatchObject({ required: 25, available: 0 });
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(4);
  });

  it("cancels a queued job and gives its credits back; cancelling again is 409", async () => {
    const u = await ctx.api.signUp();
    const { body } = await ctx.api.upload(u.token, "clip.mp4", "video/mp4", makeVideo());
    const job = await ctx.api.post("/jobs", { type: "video.color-grade", input: { file_id: body.file.id } }, u.token);
    expect((await ctx.api.get("/billing/credits", u.token)).body.credits).toBe(75);
    const cancel = await ctx.api.post(`/jobs/${job.body.id}/cancel`, {}, u.token);
    expect(cancel.status).toBe(200);
    expect(cancel.body).toMatchObject({ credits_refunded: 25, job: { status: "canceled", credits: { state: "released" } } });
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
    expectEnvelope(await ctx.api.post(`/jobs/${job.body.id}/cancel`, {}, u.token), 409);
    const ledger = await ctx.api.get("/billing/ledger", u.token);
    expect(ledger.body.data.map((e: { kind: string }) => e.kind)).toEqual(expect.arrayContaining(["grant", "reserve", "release"]));
  });

  it("filters and pages the job list", async () => {
    const u = await userWithImage();
    for (const width of [10, 20, 30]) await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: u.fileId, width } }, u.token);
    await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: u.fileId } }, u.token);
    const thumbs = await ctx.api.get("/jobs?type=image.thumbnail", u.token);
    expect(thumbs.body.total).toBe(1);
    const page = await ctx.api.get("/jobs?status=queued&limit=3&offset=0", u.token);
    expect(page.body).toMatchObject({ total: 4, limit: 3, has_more: true });
    expect((await ctx.api.get("/jobs?status=succeeded", u.token)).body.total).toBe(0);
    expectEnvelope(await ctx.api.get("/jobs?status=exploded", u.token), 422);
  });
});
