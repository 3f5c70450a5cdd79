import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { jobHelpers, succeeded } from "./jobs.ts";
import { makePng, makeVideo } from "./media.ts";
import { signUpAdmin, useStack } from "./stack.ts";
import { eventsOf, expectGapFree, watchJob } from "./watch.ts";

// Places are told every 200 ms here (2 s by default); one video worker runs one job at a time, so a backlog drains in turn.
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway", "worker-image", "worker-video"],
  env: { QUEUE_PLACES_INTERVAL_MS: "200", WORKER_CONCURRENCY: "1" },
});
const { upload, settled } = jobHelpers(ctx);

describe("POST /jobs/batch, display_name and metadata (issue 15)", () => {
  it("creates a batch of three in order with their names and metadata, 202, and runs them", async () => {
    const u = await ctx.api.signUp();
    const png = await upload(u.token, "in.png", "image/png", await makePng());
    const reply = await ctx.api.post(
      "/jobs/batch",
      {
        jobs: [
          { type: "image.thumbnail", input: { file_id: png.id }, display_name: "thumb one", metadata: { shot: "a", n: 1 } },
          { type: "image.thumbnail", input: { file_id: png.id, width: 64, height: 64 } },
          { type: "image.resize", input: { file_id: png.id, width: 32 }, display_name: "small" },
        ],
      },
      u.token,
    );
    expect(reply.status, JSON.stringify(reply.body)).toBe(202);
    expect(reply.body.jobs.map((j: { type: string; display_name: string | null; metadata: object }) => [j.type, j.display_name, j.metadata])).toEqual([
      ["image.thumbnail", "thumb one", { shot: "a", n: 1 }],
      ["image.thumbnail", null, {}],
      ["image.resize", "small", {}],
    ]);
    expect(reply.headers.get("x-ratelimit-remaining")).toBe("7");
    for (const job of reply.body.jobs) succeeded(await settled(job.id, u.token));
    expect((await ctx.api.get(`/jobs/${reply.body.jobs[0].id}`, u.token)).body).toMatchObject({ display_name: "thumb one", metadata: { shot: "a", n: 1 } });
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 97, reserved: 0 });
  });

  it("refuses a batch with one bad input whole (422 naming jobs[1]), and one of 101 jobs: no job, nothing reserved", async () => {
    const u = await ctx.api.signUp();
    const png = await upload(u.token, "in.png", "image/png", await makePng());
    const good = { type: "image.thumbnail", input: { file_id: png.id } };
    const bad = await ctx.api.post("/jobs/batch", { jobs: [good, { type: "image.resize", input: { file_id: png.id, width: -1 } }, good] }, u.token);
    expectEnvelope(bad, 422, "INVALID_INPUT");
    expect(bad.body.error.details.fields.map((f: { path: string }) => f.path)).toEqual(["jobs[1].input.width"]);
    const tooMany = await ctx.api.post("/jobs/batch", { jobs: Array.from({ length: 101 }, () => good) }, u.token);
    expectEnvelope(tooMany, 422, "INVALID_INPUT");
    expect(JSON.stringify(tooMany.body.error.details)).toContain("body.jobs");
    expectEnvelope(await ctx.api.post("/jobs/batch", { jobs: [] }, u.token), 422, "INVALID_INPUT");
    const bigMetadata = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i]));
    expectEnvelope(await ctx.api.post("/jobs", { ...good, metadata: bigMetadata }, u.token), 422, "INVALID_INPUT");
    expectEnvelope(await ctx.api.post("/jobs", { ...good, metadata: { blob: "x".repeat(17 * 1024) } }, u.token), 422, "INVALID_INPUT");
    expectEnvelope(await ctx.api.post("/jobs", { ...good, display_name: "x".repeat(201) }, u.token), 422, "INVALID_INPUT");
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(0);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("refuses a batch the balance cannot pay whole: 402 with required and available, nothing reserved", async () => {
    const u = await ctx.api.signUp();
    const clip = await upload(u.token, "clip.mp4", "video/mp4", makeVideo(1));
    // 25 credits each: five cost 125 of the 100 a new account has; four alone would fit.
    const grade = { type: "video.color-grade", input: { file_id: clip.id } };
    const reply = await ctx.api.post("/jobs/batch", { jobs: Array.from({ length: 5 }, () => grade) }, u.token);
    expectEnvelope(reply, 402, "INSUFFICIENT_CREDITS");
    expect(reply.body.error.details).toMatchObject({ required: 125, available: 100 });
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(0);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
    expect((await ctx.api.get("/billing/ledger", u.token)).body.data.filter((e: { kind: string }) => e.kind === "reserve")).toEqual([]);
  });

  it("replays a batch under its Idempotency-Key with the same jobs, and answers 409 to another body under it", async () => {
    const u = await ctx.api.signUp();
    const png = await upload(u.token, "in.png", "image/png", await makePng());
    const key = randomUUID();
    const body = { jobs: [{ type: "image.thumbnail", input: { file_id: png.id } }, { type: "image.thumbnail", input: { file_id: png.id }, metadata: { i: 2 } }] };
    const first = await ctx.api.post("/jobs/batch", body, u.token, { "idempotency-key": key });
    expect(first.status).toBe(202);
    const again = await ctx.api.post("/jobs/batch", body, u.token, { "idempotency-key": key });
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body.jobs.map((j: { id: string }) => j.id)).toEqual(first.body.jobs.map((j: { id: string }) => j.id));
    expectEnvelope(await ctx.api.post("/jobs/batch", { jobs: body.jobs.slice(0, 1) }, u.token, { "idempotency-key": key }), 409, "IDEMPOTENCY_CONFLICT");
    expect((await ctx.api.get("/jobs", u.token)).body.total).toBe(2);
  });

  it("finds a job by metadata[key]=value and by part of its display_name, as /openapi.json documents", async () => {
    const u = await ctx.api.signUp();
    const png = await upload(u.token, "in.png", "image/png", await makePng());
    const made = await ctx.api.post(
      "/jobs/batch",
      {
        jobs: [
          { type: "image.thumbnail", input: { file_id: png.id }, display_name: "Poster for Lagos", metadata: { campaign: "summer", variant: 2 } },
          { type: "image.thumbnail", input: { file_id: png.id }, display_name: "Poster for Accra", metadata: { campaign: "winter", variant: 2 } },
        ],
      },
      u.token,
    );
    const [lagos, accra] = made.body.jobs.map((j: { id: string }) => j.id);
    const ids = async (query: string) => (await ctx.api.get(`/jobs?${query}`, u.token)).body.data.map((j: { id: string }) => j.id);
    expect(await ids("metadata[campaign]=summer")).toEqual([lagos]);
    expect(await ids(`${encodeURIComponent("metadata[campaign]")}=winter`)).toEqual([accra]);
    expect((await ids("metadata[variant]=2")).sort()).toEqual([lagos, accra].sort());
    expect(await ids("metadata[variant]=2&metadata[campaign]=winter")).toEqual([accra]);
    expect(await ids("display_name=lagos")).toEqual([lagos]);
    expect(await ids("display_name=poster&metadata[campaign]=autumn")).toEqual([]);

    const doc = (await ctx.api.request("GET", "/openapi.json")).body;
    const params = doc.paths["/api/v1/jobs"].get.parameters as { name: string; style?: string; explode?: boolean }[];
    expect(params.find((p) => p.name === "metadata")).toMatchObject({ style: "deepObject", explode: true });
    expect(params.map((p) => p.name)).toContain("display_name");
    expect(doc.paths["/api/v1/jobs/batch"].post.operationId).toBe("createJobsBatch");
  });
});

describe("queue_position and eta_seconds of a job waiting for a worker (ADR 037)", () => {
  it("counts a queued job's place down as the backlog ahead of it drains, with an eta while queued and none once running", async () => {
    const signedUp = await ctx.api.signUp();
    const admin = await signUpAdmin(ctx, `admin-${signedUp.user_id}@e2e.cutroom.test`);
    // Enterprise: ten jobs may hold a slot at once, so the backlog waits for the worker, not for the owner's limit.
    expect((await ctx.api.request("PATCH", `/api/v1/admin/users/${signedUp.user_id}`, { token: admin.token, json: { tier: "enterprise" } })).status).toBe(200);
    expect((await ctx.api.post(`/admin/users/${signedUp.user_id}/credits`, { amount: 500 }, admin.token)).status).toBe(200);
    const token = (await ctx.api.post("/auth/login", { email: signedUp.email, password: signedUp.password })).body.access_token as string;
    const clip = await upload(token, "clip.mp4", "video/mp4", makeVideo(2));
    const grade = (exposure: number) => ({ type: "video.color-grade", input: { file_id: clip.id, exposure } });

    // One run first, so the type's run time is known.
    const first = await ctx.api.post("/jobs", grade(0), token);
    succeeded(await settled(first.body.id, token));

    await ctx.stack.services.stop("worker-video");
    const backlog = await ctx.api.post("/jobs/batch", { jobs: [0.1, 0.2, 0.3, 0.4].map(grade) }, token);
    expect(backlog.status, JSON.stringify(backlog.body)).toBe(202);
    const ids = backlog.body.jobs.map((j: { id: string }) => j.id) as string[];
    const last = ids.at(-1)!;
    const watching = watchJob(ctx.stack.url, token, last, { since: 0, timeoutMs: 120_000 });
    // Handed to the video queue, behind the three before it.
    let waiting: any;
    for (let tries = 0; tries < 100; tries++) {
      waiting = (await ctx.api.get(`/jobs/${last}`, token)).body;
      if (waiting.queue_position !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(waiting).toMatchObject({ status: "queued", queue_position: 4, queue_reason: "waiting_for_worker" });
    expect(waiting.eta_seconds).toEqual(expect.any(Number));
    expect(waiting.eta_seconds).toBeGreaterThan(0);
    expect((await ctx.api.get(`/jobs/${ids[0]}`, token)).body).toMatchObject({ queue_position: 1, queue_reason: "waiting_for_worker" });

    await ctx.stack.services.start("worker-video");
    const events = eventsOf(await watching);
    expectGapFree(events);
    const places = events.filter((e) => e.type === "status" && e.status === "queued" && e.queue_position).map((e) => e.queue_position as number);
    expect(places[0]).toBe(4);
    // Told as it moves up, never backwards, each place once at most.
    expect(places.length).toBeGreaterThanOrEqual(2);
    expect(places.every((p, i) => i === 0 || p < places[i - 1]!)).toBe(true);
    expect(events.filter((e) => e.queue_position).every((e) => e.queue_reason === "waiting_for_worker" && typeof e.eta_seconds === "number")).toBe(true);
    // Every place told before the job ran.
    const running = events.findIndex((e) => e.type === "status" && e.status === "running");
    expect(events.findLastIndex((e) => e.queue_position)).toBeLessThan(running);
    expect(events.at(-1)).toMatchObject({ type: "result", status: "succeeded" });
    const final = (await ctx.api.get(`/jobs/${last}`, token)).body;
    expect(final).toMatchObject({ queue_position: null, queue_reason: null, eta_seconds: null });
  });
});
