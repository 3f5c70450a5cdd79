import { describe, expect, it } from "vitest";
import { makePng, makeVideo } from "./media.ts";
import { jobHelpers, succeeded } from "./jobs.ts";
import { signUpAdmin, useStack } from "./stack.ts";
import { eventsOf, expectGapFree, watchJob } from "./watch.ts";

// worker-image only: a video job stays queued, holding its owner's slot until it is canceled.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway", "worker-image"] });
const { upload, settled } = jobHelpers(ctx);

/** A signed-up user of `tier` with a short clip and a PNG uploaded. */
async function userWith(tier: "free" | "pro") {
  const signedUp = await ctx.api.signUp();
  let token = signedUp.token;
  if (tier !== "free") {
    const admin = await signUpAdmin(ctx, `admin-${signedUp.user_id}@e2e.cutroom.test`);
    expect((await ctx.api.request("PATCH", `/api/v1/admin/users/${signedUp.user_id}`, { token: admin.token, json: { tier } })).status).toBe(200);
    token = (await ctx.api.post("/auth/login", { email: signedUp.email, password: signedUp.password })).body.access_token;
  }
  const clip = await upload(token, "clip.mp4", "video/mp4", makeVideo(1));
  const png = await upload(token, "in.png", "image/png", await makePng());
  return { token, clipId: clip.id, pngId: png.id };
}

describe("concurrent jobs per tier (ADR 031)", () => {
  it("holds a free user's second job queued with its place until the first ends, then runs it: never both at once", async () => {
    const u = await userWith("free");
    const first = await ctx.api.post("/jobs", { type: "video.thumbnails", input: { file_id: u.clipId } }, u.token);
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ status: "queued", queue_position: null, queue_reason: null });
    const second = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: u.pngId } }, u.token);
    expect(second.status, JSON.stringify(second.body)).toBe(202);
    expect(second.body).toMatchObject({ status: "queued", queue_position: 1, queue_reason: "concurrency_limit" });
    const watching = watchJob(ctx.stack.url, u.token, second.body.id, { since: 0, timeoutMs: 60_000 });
    expect((await ctx.api.get(`/jobs/${second.body.id}`, u.token)).body).toMatchObject({ status: "queued", queue_position: 1, started_at: null });

    expect((await ctx.api.post(`/jobs/${first.body.id}/cancel`, {}, u.token)).status).toBe(200);
    const events = eventsOf(await watching);
    expectGapFree(events);
    expect(events.filter((e) => e.type === "status").map((e) => [e.status, e.queue_position ?? null])).toEqual([
      ["queued", 1],
      ["queued", null],
      ["running", null],
    ]);
    const [a, b] = [await settled(first.body.id, u.token), succeeded(await settled(second.body.id, u.token))];
    expect(a.started_at).toBeNull();
    expect(Date.parse(b.started_at)).toBeGreaterThanOrEqual(Date.parse(a.completed_at));
  });

  it("holds a pro user's fourth job until one of the first three ends", async () => {
    const u = await userWith("pro");
    const held = [];
    for (let i = 0; i < 3; i++) {
      const res = await ctx.api.post("/jobs", { type: "video.thumbnails", input: { file_id: u.clipId } }, u.token);
      expect(res.body).toMatchObject({ status: "queued", queue_reason: null });
      held.push(res.body.id as string);
    }
    const fourth = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: u.pngId } }, u.token);
    expect(fourth.body).toMatchObject({ status: "queued", queue_position: 1, queue_reason: "concurrency_limit" });
    // The three with a slot wait in the video queue's line instead (ADR 037), once dispatched.
    const places = (await ctx.api.get(`/jobs?status=queued`, u.token)).body.data.map((j: { queue_position: number | null; queue_reason: string | null }) => (j.queue_reason === "concurrency_limit" ? j.queue_position : j.queue_reason));
    expect(places[0]).toBe(1);
    for (const reason of places.slice(1)) expect([null, "waiting_for_worker"]).toContain(reason);

    await ctx.api.post(`/jobs/${held[0]}/cancel`, {}, u.token);
    succeeded(await settled(fourth.body.id, u.token));
    for (const id of held.slice(1)) await ctx.api.post(`/jobs/${id}/cancel`, {}, u.token);
  });
});
