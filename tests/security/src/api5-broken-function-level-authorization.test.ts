// OWASP API5:2023 Broken Function Level Authorization: admin functions are for admins as the
// database says now (not as an old token or a setting says), /metrics for admins and the scraper,
// and behind the gateway each app may call only the functions of other apps it needs (NATS users).
import { randomUUID } from "node:crypto";
import { expectEnvelope } from "@cutroom/e2e/client";
import { signUpAdmin, useStack } from "@cutroom/e2e/stack";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { fillPath, getOperations } from "./openapi.ts";

const FORMER_BOOTSTRAP_ADMIN = "bootstrap@e2e.cutroom.test";
const METRICS_TOKEN = `scraper-${randomUUID()}`;
// BOOTSTRAP_ADMIN_EMAILS is set as before, to show it no longer makes anyone an admin. A worker and
// job-service run for the NATS tests: a worker's user holds a consumer and claims against job-service.
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"],
  env: { BOOTSTRAP_ADMIN_EMAILS: FORMER_BOOTSTRAP_ADMIN, METRICS_TOKEN },
});

const newEmail = () => `user-${randomUUID()}@e2e.cutroom.test`;
const patchUser = (userId: string, body: unknown, token: string) => ctx.api.request("PATCH", `/api/v1/admin/users/${userId}`, { json: body, token });
const refresh = (refreshToken: string) => ctx.api.post("/auth/refresh", { refresh_token: refreshToken });

let root: Awaited<ReturnType<typeof signUpAdmin>> | undefined;
/** The file's first admin, signed up on first use. */
const rootAdmin = async () => {
  root ??= await signUpAdmin(ctx);
  return root;
};

const opened: NatsConnection[] = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((nc) => nc.close()));
});
async function connectAs(options: Parameters<typeof connect>[0]) {
  const nc = await connect({ ...options, maxReconnectAttempts: 0 });
  opened.push(nc);
  return nc;
}

/** An RPC request as the gateway would send it, claiming to come from `caller`. */
const envelope = (body: unknown, caller: unknown = null) => JSON.stringify({ request_id: randomUUID(), caller, body });

describe("API5 broken function level authorization: admin functions", () => {
  it("keeps admin endpoints for admins: 403 for a plain user, stats for an admin", async () => {
    const user = await ctx.api.signUp();
    expectEnvelope(await ctx.api.get("/admin/stats", user.token), 403, "FORBIDDEN");
    const admin = await rootAdmin();
    const stats = await ctx.api.get("/admin/stats", admin.token);
    expect(stats.status).toBe(200);
    expect(stats.body).toMatchObject({ total_users: expect.any(Number), active_jobs: expect.any(Number), completed_jobs_today: expect.any(Number), total_storage_gb: expect.any(Number) });
    expect(stats.body.total_users).toBeGreaterThanOrEqual(2);
  });

  it("refuses every documented admin operation to an anonymous caller (401) and a user (403), and changes nothing", async () => {
    const { operations } = await getOperations(ctx.api);
    // Admin operations: those under /admin and those tagged admin elsewhere (the worker registry's).
    const adminOps = operations.filter((o) => o.path.startsWith("/api/v1/admin/") || o.op.tags?.includes("admin"));
    expect(adminOps.map((o) => o.key).sort()).toEqual([
      "DELETE /api/v1/admin/worker-tokens/{id}",
      "GET /api/v1/admin/queues",
      "GET /api/v1/admin/stats",
      "GET /api/v1/admin/users",
      "GET /api/v1/admin/worker-tokens",
      "GET /api/v1/workers",
      "PATCH /api/v1/admin/users/{id}",
      "POST /api/v1/admin/jobs/{id}/requeue",
      "POST /api/v1/admin/users/{id}/credits",
      "POST /api/v1/admin/worker-tokens",
      "POST /api/v1/workers/{id}/drain",
      "POST /api/v1/workers/{id}/resume",
    ]);
    const admin = await rootAdmin();
    const user = await ctx.api.signUp();
    // Real targets, so that a refusal is not just a 404 in disguise: the caller's own account, an admin's worker token, a running worker.
    const token = await ctx.api.post("/admin/worker-tokens", { name: "api5", job_types: ["image.resize"] }, admin.token);
    expect(token.status).toBe(201);
    // The worker shows in the registry with its first heartbeat.
    let workersBefore = await ctx.api.get("/workers", admin.token);
    for (let i = 0; i < 100 && workersBefore.body.workers.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      workersBefore = await ctx.api.get("/workers", admin.token);
    }
    expect(workersBefore.body.workers.length).toBeGreaterThan(0);
    const workerId = workersBefore.body.workers[0].id as string;
    const tokensBefore = (await ctx.api.get("/admin/worker-tokens", admin.token)).body.data;
    const target = (path: string) => (path.includes("/worker-tokens/") ? token.body.id : path.includes("/workers/") ? workerId : path.includes("/jobs/") ? randomUUID() : user.user_id);
    // Aimed at the caller's own account: the most tempting target.
    const bodies: Record<string, unknown> = {
      "PATCH /api/v1/admin/users/{id}": { role: "admin", tier: "enterprise" },
      "POST /api/v1/admin/users/{id}/credits": { amount: 1_000_000 },
      "POST /api/v1/admin/worker-tokens": { name: "mine", job_types: ["image.resize"] },
    };
    for (const o of adminOps) {
      const path = fillPath(o.path, target(o.path));
      const json = bodies[o.key];
      expectEnvelope(await ctx.api.request(o.method, path, { json }), 401, "UNAUTHORIZED");
      expectEnvelope(await ctx.api.request(o.method, path, { json, token: user.token }), 403, "FORBIDDEN");
    }
    expect((await ctx.api.get("/auth/me", user.token)).body).toMatchObject({ role: "user", tier: "free", credits: 100 });
    expect((await ctx.api.get("/admin/worker-tokens", admin.token)).body.data).toEqual(tokensBefore);
    const workersAfter = (await ctx.api.get("/workers", admin.token)).body.workers as Array<{ id: string; status: string }>;
    expect(workersAfter.find((w) => w.id === workerId)?.status).toBe(workersBefore.body.workers[0].status);
    expect((await ctx.api.get("/jobs", user.token)).body.data).toEqual([]);
  });

  it("keeps the worker API (/api/v1/worker) to worker tokens: 401 anonymous, and for a user's or an admin's access token", async () => {
    const { operations } = await getOperations(ctx.api);
    const workerOps = operations.filter((o) => o.path.startsWith("/api/v1/worker/"));
    expect(workerOps.map((o) => o.key)).toContain("POST /api/v1/worker/lease");
    const admin = await rootAdmin();
    const user = await ctx.api.signUp();
    const bodies: Record<string, unknown> = { "POST /api/v1/worker/lease": { job_types: ["image.resize"], wait_s: 0 } };
    for (const o of workerOps) {
      const path = fillPath(o.path, randomUUID());
      const json = bodies[o.key] ?? (o.method === "POST" ? {} : undefined);
      for (const token of [undefined, user.token, admin.token]) expectEnvelope(await ctx.api.request(o.method, path, { json, token }), 401, "UNAUTHORIZED");
    }
  });

  it("a demoted admin's token stops working: it cannot grant itself credits, and a refresh gives a user's token", async () => {
    const admin = await rootAdmin();
    const mallory = await signUpAdmin(ctx, newEmail());
    expect((await ctx.api.post(`/admin/users/${mallory.user_id}/credits`, { amount: 5 }, mallory.token)).body).toEqual({ credits: 105 });

    const demoted = await patchUser(mallory.user_id, { role: "user" }, admin.token);
    expect(demoted.status).toBe(200);
    expect(demoted.body).toMatchObject({ role: "user", disabled: false });

    const grant = await ctx.api.post(`/admin/users/${mallory.user_id}/credits`, { amount: 1_000_000 }, mallory.token);
    expectEnvelope(grant, 401, "UNAUTHORIZED");
    expect(grant.body.error.message).toBe("token revoked, sign in again");
    expectEnvelope(await ctx.api.get("/auth/me", mallory.token), 401, "UNAUTHORIZED");

    const renewed = await refresh(mallory.refresh);
    expect(renewed.status).toBe(200);
    const token = renewed.body.access_token as string;
    expect((await ctx.api.get("/auth/me", token)).body).toMatchObject({ role: "user", credits: 105 });
    expectEnvelope(await ctx.api.post(`/admin/users/${mallory.user_id}/credits`, { amount: 1_000_000 }, token), 403, "FORBIDDEN");
    expect((await ctx.api.get("/billing/credits", token)).body.credits).toBe(105);
  });

  it("a tier change refuses the old token at once, and a refresh carries the new tier and its limits", async () => {
    const admin = await rootAdmin();
    const user = await ctx.api.signUp();
    expect((await ctx.api.get("/billing/credits", user.token)).body).toMatchObject({ tier: "free", limits: { jobs_per_minute: 10 } });

    expect((await patchUser(user.user_id, { tier: "pro" }, admin.token)).body).toMatchObject({ tier: "pro" });
    expectEnvelope(await ctx.api.get("/billing/credits", user.token), 401, "UNAUTHORIZED");

    const renewed = await refresh(user.refresh);
    expect(renewed.status).toBe(200);
    expect((await ctx.api.get("/billing/credits", renewed.body.access_token)).body).toMatchObject({ tier: "pro", limits: { jobs_per_minute: 60 } });
  });

  it("the first admin is no longer whoever registers an address from BOOTSTRAP_ADMIN_EMAILS first, but who an operator makes one", async () => {
    const first = await ctx.api.signUp(FORMER_BOOTSTRAP_ADMIN);
    expect((await ctx.api.get("/auth/me", first.token)).body).toMatchObject({ role: "user" });
    expectEnvelope(await ctx.api.get("/admin/users", first.token), 403, "FORBIDDEN");

    const admin = await signUpAdmin(ctx, newEmail());
    expect((await ctx.api.get("/auth/me", admin.token)).body).toMatchObject({ role: "admin" });
    expect((await ctx.api.get("/admin/users", admin.token)).status).toBe(200);
  });

  it("keeps /metrics on the API port for admins and the metrics token: 401 anonymous, 403 for a user", async () => {
    expectEnvelope(await ctx.api.request("GET", "/metrics"), 401, "UNAUTHORIZED");
    const user = await ctx.api.signUp();
    expectEnvelope(await ctx.api.request("GET", "/metrics", { token: user.token }), 403, "FORBIDDEN");
    expectEnvelope(await ctx.api.request("GET", "/metrics", { token: "not-the-metrics-token" }), 401, "UNAUTHORIZED");

    const admin = await rootAdmin();
    const res = await ctx.api.request("GET", "/metrics", { token: admin.token });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(res.body).toMatch(/^cutroom_http_requests_total\{method="GET",route="\/metrics",status="401"\} [1-9]/m);
    expect(res.body).toMatch(/^cutroom_http_request_duration_seconds_bucket\{.*route="\/api\/v1\/auth\/register".*\} \d+/m);
    expect(res.body).toMatch(/^cutroom_job_watchers 0$/m);
    expect(res.body).toMatch(/^process_cpu_user_seconds_total /m);

    expect((await ctx.api.request("GET", "/metrics", { token: METRICS_TOKEN })).status).toBe(200);
  });
});

describe("API5 broken function level authorization: functions between apps (NATS users)", () => {
  it("refuses a connection without a user or with a wrong password", async () => {
    await expect(connectAs({ servers: ctx.stack.natsUrl })).rejects.toThrow(/authorization violation/i);
    const worker = ctx.stack.natsOptions("worker-image");
    await expect(connectAs({ ...worker, pass: "not-the-password" })).rejects.toThrow(/authorization violation/i);
  });

  it("leaves billing's grant to auth-service: the gateway's NATS user may not call it directly", async () => {
    const user = await ctx.api.signUp();
    const nc = await connectAs(ctx.stack.natsOptions("gateway"));
    const body = envelope({ user_id: user.user_id, amount: 1000 }, { user_id: user.user_id, role: "admin", tier: "free" });
    await expect(nc.request("svc.billing.grant", body, { timeout: 5000 })).rejects.toThrow(/permissions violation/i);
    expect((await ctx.api.get("/billing/credits", user.token)).body.credits).toBe(100);
  });

  it("lets a worker's user claim and finish jobs, but not grant credits, serve billing or read others' replies", async () => {
    const user = await ctx.api.signUp();
    const nc = await connectAs(ctx.stack.natsOptions("worker-image"));

    // Its own subjects work: job-service answers (the job does not exist, but the call got through).
    for (const method of ["claim", "finish"]) {
      const body = method === "claim" ? { job_id: randomUUID(), dispatch: 1, worker: "intruder" } : { job_id: randomUUID(), dispatch: 1, outcome: { status: "failed", error: { code: "x", message: "x" } } };
      const reply = (await nc.request(`svc.job.${method}`, envelope(body), { timeout: 5000 })).json<{ ok: boolean }>();
      expect(reply, method).toHaveProperty("ok");
    }
    const consumer = await (await jetstreamManager(nc)).consumers.info("JOBS", "worker-image");
    expect(consumer.name).toBe("worker-image");

    // A grant "from an admin" is refused by the broker itself, and the balance stays as it was.
    const caller = { user_id: user.user_id, role: "admin", tier: "free" };
    await expect(nc.request("svc.billing.grant", envelope({ user_id: user.user_id, amount: 1000 }, caller), { timeout: 5000 })).rejects.toThrow(/permissions violation/i);
    expect((await ctx.api.get("/billing/credits", user.token)).body).toMatchObject({ credits: 100 });

    // Nor can it stand in for billing, listen to every job's events or read the gateway's replies (tokens travel there).
    for (const subject of ["svc.billing.*", "jobs.events.>", "_INBOX_gateway.>", "_INBOX.>"]) {
      const sub = nc.subscribe(subject);
      expect(String(await sub.closed), subject).toMatch(/permissions violation/i);
    }
    // Nor change the streams job-service owns.
    const jsm = await jetstreamManager(nc);
    await expect(jsm.streams.purge("JOBS")).rejects.toThrow(/permissions violation/i);
    await expect(jsm.consumers.delete("JOBS", "worker-image")).rejects.toThrow(/permissions violation/i);
  });

  it("keeps the gateway's user away from the worker-facing methods", async () => {
    const nc = await connectAs(ctx.stack.natsOptions("gateway"));
    const finish = { job_id: randomUUID(), dispatch: 1, outcome: { status: "succeeded", result: {} } };
    await expect(nc.request("svc.job.finish", envelope(finish), { timeout: 5000 })).rejects.toThrow(/permissions violation/i);
    await expect(nc.request("svc.billing.capture", envelope({ job_id: randomUUID() }), { timeout: 5000 })).rejects.toThrow(/permissions violation/i);
  });
});
