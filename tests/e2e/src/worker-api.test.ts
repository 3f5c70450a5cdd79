import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { makePng } from "./media.ts";
import { signUpAdmin, useStack } from "./stack.ts";
import { eventsOf, expectGapFree, watchJob } from "./watch.ts";

// No NATS image worker: every image job here is run by the Python worker over HTTP (ADR 040).
// Short registry intervals, so a worker over HTTP that stops calling reads as gone within the test.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"], env: { WORKER_GONE_AFTER_MS: "2000", WORKER_HEARTBEAT_MS: "200" } });
const workerScript = fileURLToPath(new URL("../../../examples/python-worker/worker.py", import.meta.url));

/** Runs examples/python-worker/worker.py --once against the stack; its exit status and output. */
function runPythonWorker(token: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("python3", [workerScript, "--once", "--wait", "10", "--lease", "10", "--name", "py-e2e"], {
      env: { ...process.env, CUTROOM_API: ctx.stack.url, CUTROOM_WORKER_TOKEN: token },
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}

/** The width and height a PNG's IHDR says. */
const pngSize = (bytes: Uint8Array) => {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  return { width: view.getUint32(16), height: view.getUint32(20) };
};

describe("workers over HTTP", () => {
  const setup = async () => {
    const admin = await signUpAdmin(ctx, `admin-${Date.now()}@e2e.cutroom.test`);
    const made = await ctx.api.post("/admin/worker-tokens", { name: "python fleet", job_types: ["image.thumbnail"] }, admin.token);
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body.token).toMatch(/^cwk_/);
    const user = await ctx.api.signUp();
    const file = await ctx.api.upload(user.token, "photo.png", "image/png", await makePng(320, 240));
    expect(file.status).toBe(200);
    return { admin, worker: made.body as { id: string; token: string }, user, fileId: file.body.file.id as string };
  };
  const thumbnail = async (token: string, fileId: string) => {
    const job = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: fileId, width: 64, height: 48, format: "png" } }, token);
    expect(job.status, JSON.stringify(job.body)).toBe(202);
    return job.body.id as string;
  };

  it("runs a thumbnail job end to end in the Python worker: leased, reported, uploaded, completed, downloadable", async () => {
    const { admin, worker, user, fileId } = await setup();
    const listed = await ctx.api.get("/admin/worker-tokens", admin.token);
    expect(listed.body.data.find((t: { id: string }) => t.id === worker.id)).toMatchObject({ name: "python fleet", job_types: ["image.thumbnail"], revoked_at: null });
    expect(JSON.stringify(listed.body)).not.toContain(worker.token);

    const jobId = await thumbnail(user.token, fileId);
    const watched = watchJob(ctx.stack.url, user.token, jobId, { since: 0, timeoutMs: 60_000 });
    const run = await runPythonWorker(worker.token);
    expect(run.code, run.out).toBe(0);

    const events = eventsOf(await watched);
    expectGapFree(events);
    expect(events.map((e) => `${e.type}:${e.status ?? e.progress ?? ""}${e.stage ? `:${e.stage}` : ""}`)).toEqual(
      expect.arrayContaining(["status:running", "stage:running:fetch", "stage:done:upload", "progress:70", "result:succeeded"]),
    );
    expect(events.find((e) => e.type === "status" && e.status === "running").message).toContain("py-e2e (http)");

    const job = (await ctx.api.get(`/jobs/${jobId}`, user.token)).body;
    expect(job).toMatchObject({ status: "succeeded", progress: 100, credits: { state: "captured" } });
    const [output] = job.result.files;
    expect(output).toMatchObject({ filename: "photo.png", content_type: "image/png" });
    const url = await ctx.api.get(`/files/${output.file_id}/download-url`, user.token);
    const bytes = new Uint8Array(await (await fetch(url.body.url)).arrayBuffer());
    expect(bytes.byteLength).toBe(output.size);
    expect(pngSize(bytes)).toEqual({ width: 64, height: 48 });
  });

  it("refuses the late completion of a lease another worker took over once it expired", async () => {
    const { worker, user, fileId } = await setup();
    const jobId = await thumbnail(user.token, fileId);
    const late = await ctx.api.post("/worker/lease", { job_types: ["image.thumbnail"], lease_s: 1, wait_s: 10 }, worker.token);
    expect(late.status, JSON.stringify(late.body)).toBe(200);
    expect(late.body.job).toMatchObject({ id: jobId, type: "image.thumbnail", stages: ["fetch", "process", "upload"] });
    expect(late.body.inputs[fileId].url).toMatch(/^http/);

    // The lease runs out without a heartbeat; the Python worker takes the job over and finishes it.
    await new Promise((r) => setTimeout(r, 1500));
    const run = await runPythonWorker(worker.token);
    expect(run.code, run.out).toBe(0);

    const completion = await ctx.api.post(`/worker/leases/${late.body.lease_id}/complete`, { result: { files: [] } }, worker.token);
    expect(completion.status).toBe(409);
    expect(completion.body.error).toMatchObject({ code: "LEASE_LOST", details: { job_id: jobId, status: "succeeded" } });
    const progress = await ctx.api.post(`/worker/leases/${late.body.lease_id}/events`, { events: [{ type: "progress", progress: 50 }] }, worker.token);
    expect(progress.status).toBe(409);
    const job = (await ctx.api.get(`/jobs/${jobId}`, user.token)).body;
    expect(job).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(job.result.files).toHaveLength(1);
  });

  it("keeps worker tokens and users' tokens apart, holds a token to its job types, and refuses a revoked one at once", async () => {
    const { admin, worker, user } = await setup();
    const asUser = await ctx.api.post("/worker/lease", { job_types: ["image.thumbnail"] }, user.token);
    expect(asUser.status).toBe(401);
    expect((await ctx.api.get("/jobs", worker.token)).status).toBe(401);
    expect((await ctx.api.post("/admin/worker-tokens", { name: "x", job_types: ["image.thumbnail"] }, user.token)).status).toBe(403);

    const outOfScope = await ctx.api.post("/worker/lease", { job_types: ["image.resize"] }, worker.token);
    expect(outOfScope.status).toBe(403);
    expect(outOfScope.body.error.details.job_types).toEqual(["image.resize"]);
    const none = await ctx.api.post("/worker/lease", { job_types: ["image.thumbnail"], wait_s: 0 }, worker.token);
    expect(none.status).toBe(204);
    expect((await ctx.api.post("/admin/worker-tokens", { name: "x", job_types: ["image.nope"] }, admin.token)).status).toBe(422);

    expect((await ctx.api.delete(`/admin/worker-tokens/${worker.id}`, admin.token)).status).toBe(204);
    const revoked = await ctx.api.post("/worker/lease", { job_types: ["image.thumbnail"] }, worker.token);
    expect(revoked.status).toBe(401);
    expect(revoked.body.error.code).toBe("UNAUTHORIZED");
  });

  it("lists a worker over HTTP in GET /workers from its calls: healthy with its token's job types and live lease, gone once it stops calling; no drain", async () => {
    const { admin, worker, user, fileId } = await setup();
    const jobId = await thumbnail(user.token, fileId);
    const call = (path: string, body: unknown) =>
      fetch(`${ctx.stack.url}/api/v1${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${worker.token}`, "content-type": "application/json", "cutroom-worker-instance": "render-box-7" },
        body: JSON.stringify(body),
      });
    const leased = await call("/worker/lease", { job_types: ["image.thumbnail"], lease_s: 30, wait_s: 10 });
    expect(leased.status).toBe(200);
    const lease = (await leased.json()) as { lease_id: string; job: { id: string } };
    expect(lease.job.id).toBe(jobId);

    const listed = async () => ((await ctx.api.get("/workers", admin.token)).body.workers as { id: string; kind: string }[]).find((w) => w.kind === "http" && w.id.includes(worker.id));
    // It heartbeats its lease as a worker running a job does: each call counts as its registry heartbeat.
    await vi.waitFor(
      async () => {
        expect((await call(`/worker/leases/${lease.lease_id}/heartbeat`, {})).status).toBe(200);
        expect(await listed()).toMatchObject({ status: "healthy", kind: "http", host: "render-box-7", job_types: ["image.thumbnail"], in_flight: 1 });
      },
      { timeout: 10_000, interval: 100 },
    );
    const instance = (await listed())!;
    const all = (await ctx.api.get("/workers", admin.token)).body;
    expect(all.job_types["image.thumbnail"].healthy_instances).toBeGreaterThanOrEqual(1);

    const drain = await ctx.api.post(`/workers/${instance.id}/drain`, {}, admin.token);
    expect(drain.status).toBe(409);
    expect(drain.body.error.message).toContain("over HTTP");

    // It fails the job and goes silent.
    expect((await call(`/worker/leases/${lease.lease_id}/fail`, { error: { code: "NOPE", message: "test worker gives up" }, retryable: false })).status).toBe(200);
    await vi.waitFor(async () => expect(await listed()).toMatchObject({ status: "gone", in_flight: 0, jobs_failed_last_hour: 1 }), { timeout: 15_000, interval: 100 });
  });
});
