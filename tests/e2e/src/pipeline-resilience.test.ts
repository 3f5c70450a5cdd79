import { describe, expect, it } from "vitest";
import { ffprobe } from "./media.ts";
import { useStack } from "./stack.ts";
import { jobHelpers } from "./jobs.ts";
import { eventsOf, expectGapFree, watchJob, watchPipeline } from "./watch.ts";

/*
 * Pipelines through the gateway and real workers, seen live and across a worker's crash. Short
 * timings so that a killed worker's job is delivered again within a test's patience.
 */
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "worker-video", "model-emulator", "gateway"],
  env: { JOB_ACK_WAIT_MS: "3000", JOB_LEASE_MS: "3000", RECONCILE_INTERVAL_MS: "500", REDISPATCH_AFTER_MS: "2000" },
});
const jobs = jobHelpers(ctx);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stageOf = (p: any, name: string) => p.stages.find((s: { name: string }) => s.name === name);
const storyboard = { prompt: "a lighthouse at dusk", num_images: 1, video_prompt: "the light turns", duration: 1 };

/** Polls a run until `done` says so, it ended, or 120 s pass; its last state. */
async function waitFor(token: string, id: string, done: (p: any) => boolean) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const p = (await ctx.api.get(`/pipelines/${id}`, token)).body;
    if (done(p) || ["succeeded", "failed", "canceled"].includes(p.status) || Date.now() > deadline) return p;
    await sleep(250);
  }
}

/** Approves all outputs at the gate the run waits at. */
async function approveAll(token: string, p: any, gate: string, stage: string) {
  const ids: string[] = [];
  for (const jobId of stageOf(p, stage).job_ids) ids.push(...(await ctx.api.get(`/jobs/${jobId}`, token)).body.result.files.map((f: { file_id: string }) => f.file_id));
  const approved = await ctx.api.post(`/pipelines/${p.id}/approve`, { stage: gate, file_ids: ids }, token);
  expect(approved.status, JSON.stringify(approved.body)).toBe(200);
}

describe("pipelines live and across a worker's crash", () => {
  it("shows a client on WS /ws/pipelines/{id}?since=0 every event of a storyboard run from seq 1 without gaps, approvals included, ending in pipeline_completed", async () => {
    const u = await ctx.api.signUp();
    const created = await ctx.api.post("/pipelines", { type: "storyboard", input: storyboard }, u.token);
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const id = created.body.id as string;
    // The client drives the run from what it sees: each waiting_approval is answered with all the outputs it offers.
    const approvals: Promise<unknown>[] = [];
    const watched = await watchPipeline(ctx.stack.url, u.token, id, {
      since: 0,
      timeoutMs: 120_000,
      onMessage: (m) => {
        if (m.type === "waiting_approval") approvals.push(ctx.api.post(`/pipelines/${id}/approve`, { stage: m.stage, file_ids: m.file_ids }, u.token));
      },
    });
    const answers = (await Promise.all(approvals)) as { status: number }[];
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(watched.messages[0]).toMatchObject({ type: "snapshot" });
    expect(watched.closeCode).toBe(1000);
    const events = eventsOf(watched);
    expectGapFree(events, 1);
    expect(events.every((e) => e.pipeline_id === id)).toBe(true);
    expect(events.filter((e) => e.type !== "stage_progress").map((e) => `${e.type}${e.stage ? `:${e.stage}` : ""}`)).toEqual([
      "stage_started:images",
      "stage_completed:images",
      "stage_started:approve_images",
      "waiting_approval:approve_images",
      "stage_completed:approve_images",
      "stage_started:clips",
      "stage_completed:clips",
      "stage_started:approve_clips",
      "waiting_approval:approve_clips",
      "stage_completed:approve_clips",
      "stage_started:compose",
      "stage_completed:compose",
      "pipeline_completed",
    ]);
    expect(events.find((e) => e.type === "waiting_approval")!.file_ids).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ type: "pipeline_completed", status: "succeeded", progress: 100 });
    expect((await ctx.api.get(`/pipelines/${id}`, u.token)).body).toMatchObject({ status: "succeeded", outputs: [expect.any(String)] });
  });

  it("does not lose a run whose worker is killed (SIGKILL) mid-stage: the job runs again, the run succeeds, each job is charged once", async () => {
    const u = await ctx.api.signUp();
    const created = await ctx.api.post("/pipelines", { type: "storyboard", input: storyboard }, u.token);
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const id = created.body.id as string;
    const imageJob = stageOf(created.body, "images").job_ids[0] as string;

    // Killed as soon as the image job runs: its model prediction takes a second or more, so the kill lands mid-job.
    let killed: Promise<unknown> | undefined;
    const watched = await watchJob(ctx.stack.url, u.token, imageJob, {
      since: 0,
      timeoutMs: 120_000,
      onMessage: (m) => {
        if (m.type === "status" && m.status === "running" && !killed) {
          killed = ctx.stack.services.kill("worker-image").then(() => ctx.stack.services.start("worker-image"));
        }
      },
    });
    expect(killed, "the worker was killed while the job ran").toBeDefined();
    await killed;
    expect(eventsOf(watched).filter((e) => e.type === "result")).toHaveLength(1);
    const image = (await ctx.api.get(`/jobs/${imageJob}`, u.token)).body;
    expect(image).toMatchObject({ status: "succeeded", credits: { state: "captured" } });
    // Delivered again after the kill: the first attempt died with the worker.
    expect(image.attempts).toBeGreaterThanOrEqual(2);

    const atImages = await waitFor(u.token, id, (p) => p.status === "waiting_approval");
    expect(atImages.status, JSON.stringify(atImages.error ?? atImages.stages)).toBe("waiting_approval");
    await approveAll(u.token, atImages, "approve_images", "images");
    const atClips = await waitFor(u.token, id, (p) => stageOf(p, "approve_clips").status === "waiting_approval");
    expect(atClips.status, JSON.stringify(atClips.error ?? atClips.stages)).toBe("waiting_approval");
    await approveAll(u.token, atClips, "approve_clips", "clips");
    const done = await waitFor(u.token, id, (p) => p.status === "succeeded");
    expect(done.status, JSON.stringify(done.error ?? done.stages)).toBe("succeeded");
    expect(done.outputs).toHaveLength(1);
    const probe = ffprobe(await jobs.download(u.token, done.outputs[0]), "mp4");
    expect(probe.streams.map((s: { codec_type: string }) => s.codec_type)).toContain("video");

    // One reservation and one capture per job, the killed one included: 2 for the image, 5 for the 1 s clip, 20 for the compose.
    const runJobs: string[] = done.stages.flatMap((s: { job_ids: string[] }) => s.job_ids);
    expect(runJobs).toHaveLength(3);
    const ledger = (await ctx.api.get("/billing/ledger?limit=100", u.token)).body.data as { job_id: string; kind: string }[];
    for (const jobId of runJobs) expect(ledger.filter((e) => e.job_id === jobId).map((e) => e.kind).sort(), jobId).toEqual(["capture", "reserve"]);
    expect(done.credits).toBe(27);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 73, reserved: 0 });
  });

  it("takes an Idempotency-Key on POST /pipelines: a retry gets the same run (202, idempotent-replayed), another body with the key is 409", async () => {
    const u = await ctx.api.signUp();
    const body = { type: "storyboard", input: { ...storyboard, prompt: "[emulator:slow] a hat" } };
    const key = { "idempotency-key": "storyboard-1" };
    const first = await ctx.api.post("/pipelines", body, u.token, key);
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const retry = await ctx.api.post("/pipelines", body, u.token, key);
    expect(retry.status).toBe(202);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.body).toMatchObject({ id: first.body.id, type: "storyboard" });
    expect(retry.body).not.toHaveProperty("replayed");
    const other = await ctx.api.post("/pipelines", { ...body, input: { ...body.input, num_images: 2 } }, u.token, key);
    expect(other.status).toBe(409);
    expect(other.body.error).toMatchObject({ code: "IDEMPOTENCY_CONFLICT", request_id: expect.any(String) });
    expect((await ctx.api.get("/pipelines", u.token)).body.total).toBe(1);
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ reserved: 2 });
    expect((await ctx.api.post(`/pipelines/${first.body.id}/cancel`, {}, u.token)).status).toBe(200);
  });
});
