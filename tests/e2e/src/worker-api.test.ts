import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { makePng } from "./media.ts";
import { createClient } from "./client.ts";
import { signUpAdmin, useStack } from "./stack.ts";
import { eventsOf, expectGapFree, watchJob } from "./watch.ts";

// No NATS image worker: every image job here is run by the Python worker over HTTP (ADR 040).
// Short registry intervals, so a worker over HTTP that stops calling reads as gone within the test. Two gateways:
// what the registry says of a worker over HTTP (draining, in_flight) must not depend on the one it called.
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"],
  instances: { gateway: 2 },
  env: { WORKER_GONE_AFTER_MS: "2000", WORKER_HEARTBEAT_MS: "200", RECONCILE_INTERVAL_MS: "500" },
});
const secondGateway = () => createClient(`http://127.0.0.1:${ctx.stack.services.env("gateway-2").PORT}`);
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

  it("lists a worker over HTTP in GET /workers from its calls: healthy with its token's job types and live lease, gone once it stops calling", async () => {
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
    const all = (await ctx.api.get("/workers", admin.token)).body;
    expect(all.job_types["image.thumbnail"].healthy_instances).toBeGreaterThanOrEqual(1);

    // It fails the job and goes silent.
    expect((await call(`/worker/leases/${lease.lease_id}/fail`, { error: { code: "NOPE", message: "test worker gives up" }, retryable: false })).status).toBe(200);
    await vi.waitFor(async () => expect(await listed()).toMatchObject({ status: "gone", in_flight: 0, jobs_failed_last_hour: 1 }), { timeout: 15_000, interval: 100 });
  });

  it("drains a worker over HTTP on every gateway: its lease calls get no job at once while its leases in hand complete; resumed, it leases again; in_flight is its leases, whichever gateway handed them", async () => {
    const { admin, worker, user, fileId } = await setup();
    const gateways = [ctx.api, secondGateway()];
    const as = (instance: string) => ({ "cutroom-worker-instance": instance });
    // A user of its own per job held at once: a free account runs one job at a time, the next waits for its slot.
    const another = async () => {
      const u = await ctx.api.signUp();
      const file = await ctx.api.upload(u.token, "photo.png", "image/png", await makePng(320, 240));
      return { token: u.token, fileId: file.body.file.id as string };
    };
    const [u1, u2] = [await another(), await another()];
    const [j0, j1] = [await thumbnail(user.token, fileId), await thumbnail(u1.token, u1.fileId)];
    // One instance takes one job through each gateway.
    const leases: { lease_id: string; job: { id: string } }[] = [];
    for (const gw of gateways) {
      const got = await gw.post("/worker/lease", { job_types: ["image.thumbnail"], lease_s: 30, wait_s: 10 }, worker.token, as("box-a"));
      expect(got.status, JSON.stringify(got.body)).toBe(200);
      leases.push(got.body);
    }
    expect(leases.map((l) => l.job.id).sort()).toEqual([j0, j1].sort());
    const boxA = async (gw = ctx.api) => ((await gw.get("/workers", admin.token)).body.workers as { id: string; kind: string; host: string }[]).find((w) => w.kind === "http" && w.id.includes(worker.id) && w.host === "box-a");
    const heartbeatAll = async () => {
      for (const [i, l] of leases.entries()) expect((await gateways[i]!.post(`/worker/leases/${l.lease_id}/heartbeat`, {}, worker.token, as("box-a"))).status).toBe(200);
    };
    // Both gateways put its record; each counts its leases in Postgres, so neither says 1.
    await vi.waitFor(
      async () => {
        await heartbeatAll();
        for (const gw of gateways) expect(await boxA(gw)).toMatchObject({ status: "healthy", in_flight: 2 });
      },
      { timeout: 10_000, interval: 100 },
    );
    const id = (await boxA())!.id;

    // Drained through the second gateway, seen as draining through the first.
    const j2 = await thumbnail(u2.token, u2.fileId);
    const drained = await vi.waitFor(
      async () => {
        await heartbeatAll();
        const drain = await gateways[1]!.post(`/workers/${id}/drain`, {}, admin.token);
        expect(drain.status, JSON.stringify(drain.body)).toBe(200);
        expect(drain.body).toMatchObject({ id, kind: "http", status: "draining" });
        return drain.body;
      },
      { timeout: 10_000, interval: 100 },
    );
    expect(drained.in_flight).toBe(2);
    await vi.waitFor(
      async () => {
        await heartbeatAll();
        expect(await boxA()).toMatchObject({ status: "draining", in_flight: 2 });
      },
      { timeout: 10_000, interval: 100 },
    );
    // A job is queued, yet its long poll answers 204 (on the old code it leased j2), and j2 stays queued.
    const refused = await ctx.api.post("/worker/lease", { job_types: ["image.thumbnail"], lease_s: 30, wait_s: 30 }, worker.token, as("box-a"));
    expect(refused.status).toBe(204);
    expect((await ctx.api.get(`/jobs/${j2}`, u2.token)).body.status).toBe("queued");

    // What it holds it still reports and completes.
    for (const [i, l] of leases.entries()) {
      const gw = gateways[i]!;
      expect((await gw.post(`/worker/leases/${l.lease_id}/events`, { events: [{ type: "progress", progress: 50 }] }, worker.token, as("box-a"))).status).toBe(200);
      const done = await gw.post(`/worker/leases/${l.lease_id}/complete`, { result: { files: [] } }, worker.token, as("box-a"));
      expect(done.status, JSON.stringify(done.body)).toBe(200);
      expect((await ctx.api.get(`/jobs/${l.job.id}`, l.job.id === j0 ? user.token : u1.token)).body).toMatchObject({ status: "succeeded", credits: { state: "captured" } });
    }
    // Still draining through its calls; its jobs in hand are none now, and its last hour counts both jobs it
    // ended, one through each gateway (from Postgres: each gateway alone had seen one).
    await vi.waitFor(
      async () => {
        expect((await ctx.api.post("/worker/lease", { job_types: ["image.thumbnail"], wait_s: 0 }, worker.token, as("box-a"))).status).toBe(204);
        for (const gw of gateways) expect(await boxA(gw)).toMatchObject({ status: "draining", in_flight: 0, jobs_done_last_hour: 2, jobs_failed_last_hour: 0 });
      },
      { timeout: 10_000, interval: 100 },
    );

    // Another instance on the same token takes the job box-a was refused.
    const boxB = await gateways[1]!.post("/worker/lease", { job_types: ["image.thumbnail"], lease_s: 30, wait_s: 10 }, worker.token, as("box-b"));
    expect(boxB.status).toBe(200);
    expect(boxB.body.job.id).toBe(j2);
    expect((await gateways[1]!.post(`/worker/leases/${boxB.body.lease_id}/complete`, { result: { files: [] } }, worker.token, as("box-b"))).status).toBe(200);

    // Resumed, it leases again.
    const resumed = await ctx.api.post(`/workers/${id}/resume`, {}, admin.token);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body).toMatchObject({ id, status: "healthy" });
    await vi.waitFor(async () => expect(await boxA(gateways[1])).toMatchObject({ status: "healthy" }), { timeout: 10_000, interval: 100 });
    const j3 = await thumbnail(user.token, fileId);
    const again = await gateways[1]!.post("/worker/lease", { job_types: ["image.thumbnail"], lease_s: 30, wait_s: 10 }, worker.token, as("box-a"));
    expect(again.status).toBe(200);
    expect(again.body.job.id).toBe(j3);
    expect((await gateways[1]!.post(`/worker/leases/${again.body.lease_id}/complete`, { result: { files: [] } }, worker.token, as("box-a"))).status).toBe(200);
  });

  it("fails a job whose lease ran out on each of its attempts as WORKER_LOST, its credits released once, instead of leasing it again", async () => {
    const { worker, user, fileId } = await setup();
    const before = (await ctx.api.get("/billing/credits", user.token)).body;
    const jobId = await thumbnail(user.token, fileId);
    const { max_attempts: attempts } = (await ctx.api.get(`/jobs/${jobId}`, user.token)).body;
    // A worker that takes the job and dies, every time: each lease runs out and the next one takes the job again.
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const got = await ctx.api.post("/worker/lease", { job_types: ["image.thumbnail"], lease_s: 1, wait_s: 10 }, worker.token);
      expect(got.status, JSON.stringify(got.body)).toBe(200);
      expect(got.body.job).toMatchObject({ id: jobId, attempt });
    }
    await vi.waitFor(
      async () => expect((await ctx.api.get(`/jobs/${jobId}`, user.token)).body).toMatchObject({ status: "failed", attempts, error: { code: "WORKER_LOST" }, credits: { state: "released" } }),
      { timeout: 20_000, interval: 200 },
    );
    expect((await ctx.api.get(`/jobs/${jobId}`, user.token)).body.error.message).toContain(`attempt ${attempts} of ${attempts}`);
    // Not leased again, and refunded exactly once.
    expect((await ctx.api.post("/worker/lease", { job_types: ["image.thumbnail"], wait_s: 2 }, worker.token)).status).toBe(204);
    const ledger = (await ctx.api.get("/billing/ledger?limit=100", user.token)).body.data.filter((e: { job_id: string }) => e.job_id === jobId);
    expect(ledger.map((e: { kind: string }) => e.kind).sort()).toEqual(["release", "reserve"]);
    expect((await ctx.api.get("/billing/credits", user.token)).body).toMatchObject({ credits: before.credits, reserved: 0 });
  });
});
