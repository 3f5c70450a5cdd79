import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { makePng, makeVideo } from "./media.ts";
import { useStack } from "./stack.ts";

// No workers: what is asserted is what the API refuses and reserves at enqueue.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] });

describe("work bounded by tier and paid for by size", () => {
  it("refuses a tiny PNG asked to become a 16384×16384 AVIF with 422 for a free user, and reserves nothing", async () => {
    const u = await ctx.api.signUp();
    const png = await makePng(1, 1);
    expect(png.byteLength).toBeLessThan(200);
    const upload = await ctx.api.upload(u.token, "dot.png", "image/png", png);
    expect(upload.status).toBe(200);
    expect(upload.body.file.media).toEqual({ width: 1, height: 1, duration_seconds: null, frame_rate: null });

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
});
