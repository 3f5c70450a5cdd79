// OWASP API3:2023 Broken Object Property Level Authorization: a client sets only the properties it
// may (no mass assignment of role, tier, credits, owner, folder, status or limits), and answers carry
// only the documented properties, with internals (health reasons, hashes, paths) for no one who may not see them.
import { randomUUID } from "node:crypto";
import { expectEnvelope, type Reply } from "@cutroom/e2e/client";
import { makePng } from "@cutroom/e2e/media";
import { signUpAdmin, useStack } from "@cutroom/e2e/stack";
import { describe, expect, it } from "vitest";
import { documentedProperties, getOperations } from "./openapi.ts";

// No workers: jobs stay queued, and what is asserted is what the API stores and answers.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] });

const patchUser = (userId: string, body: unknown, token: string) => ctx.api.request("PATCH", `/api/v1/admin/users/${userId}`, { json: body, token });

let admin: Promise<{ token: string }> | undefined;
/** The file's one admin, signed up on first use. */
const adminToken = async () => {
  admin ??= signUpAdmin(ctx);
  return (await admin).token;
};

describe("API3 broken object property level authorization: what a client may set", () => {
  it("makes a plain free user with the usual credits from a registration that claims a role, a tier, credits or an id", async () => {
    const email = `mass-${randomUUID()}@e2e.cutroom.test`;
    const claimedId = randomUUID();
    const reg = await ctx.api.post("/auth/register", {
      email,
      password: "correct horse battery",
      full_name: "Mallory",
      role: "admin",
      tier: "enterprise",
      credits: 1_000_000,
      user_id: claimedId,
      disabled: false,
      tokens_valid_after: "1970-01-01T00:00:00Z",
    });
    expect(reg.status).toBe(201);
    expect(reg.body).toMatchObject({ tier: "free", credits: 100 });
    expect(reg.body.user_id).not.toBe(claimedId);
    const signIn = await ctx.api.post("/auth/login", { email, password: "correct horse battery", role: "admin" });
    expect((await ctx.api.get("/auth/me", signIn.body.access_token)).body).toMatchObject({ role: "user", tier: "free", credits: 100 });
    expectEnvelope(await ctx.api.get("/admin/users", signIn.body.access_token), 403, "FORBIDDEN");
  });

  it("keeps a job's owner, status, price and credits the service's own, whatever the body says", async () => {
    const alice = await ctx.api.signUp();
    const bob = await ctx.api.signUp();
    const { body } = await ctx.api.upload(alice.token, "in.png", "image/png", await makePng());
    const job = await ctx.api.post(
      "/jobs",
      {
        type: "image.resize",
        input: { file_id: body.file.id, width: 4096, height: 4096, user_id: bob.user_id, credits: 0, cost: 0 },
        status: "succeeded",
        user_id: bob.user_id,
        credits: { amount: 0, state: "captured" },
        result: { files: [] },
        progress: 100,
      },
      alice.token,
    );
    expect(job.status).toBe(202);
    expect(job.body).toMatchObject({ status: "queued", progress: 0, result: null, credits: { amount: 4, state: "reserved" } });
    expect(job.body.input).not.toHaveProperty("user_id");
    expect(job.body.input).not.toHaveProperty("credits");
    expect((await ctx.api.get("/billing/credits", alice.token)).body).toMatchObject({ credits: 96, reserved: 4 });
    expectEnvelope(await ctx.api.get(`/jobs/${job.body.id}`, bob.token), 404, "NOT_FOUND");
    expect((await ctx.api.get("/billing/credits", bob.token)).body).toMatchObject({ credits: 100, reserved: 0 });
  });

  it("keeps an upload's owner, folder, status and size limit the service's own, whatever the ticket request says", async () => {
    const alice = await ctx.api.signUp();
    const bob = await ctx.api.signUp();
    // The tier's limit holds though the body names a larger one.
    const huge = await ctx.api.post("/uploads", { filename: "big.mp4", content_type: "video/mp4", size: 600 * 1024 * 1024, max_bytes: 1e12, tier: "enterprise" }, alice.token);
    expectEnvelope(huge, 413, "PAYLOAD_TOO_LARGE");

    const png = await makePng();
    const ticket = await ctx.api.post(
      "/uploads",
      { filename: "a.png", content_type: "image/png", size: png.byteLength, owner_id: bob.user_id, user_id: bob.user_id, folder: "output", status: "ready", job_id: randomUUID() },
      alice.token,
    );
    expect(ticket.status).toBe(201);
    // Not ready before its bytes are checked, whatever the request said.
    expect((await ctx.api.get("/files", alice.token)).body.total).toBe(0);
    expect((await fetch(ticket.body.upload_url, { method: "PUT", headers: ticket.body.headers, body: png })).status).toBe(200);
    const confirmed = await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, alice.token);
    expect(confirmed.body.file).toMatchObject({ folder: "input", status: "ready", job_id: null, size: png.byteLength });
    expectEnvelope(await ctx.api.get(`/files/${ticket.body.file_id}`, bob.token), 404, "NOT_FOUND");
    expect((await ctx.api.get("/files", bob.token)).body.total).toBe(0);
  });

  it("lets an admin change a user's role, tier and disabled flag only: email, credits and password in the body change nothing", async () => {
    const user = await ctx.api.signUp();
    const changed = await patchUser(user.user_id, { email: `taken-${randomUUID()}@e2e.cutroom.test`, credits: 1_000_000, password: "another password 1", full_name: "Renamed" }, await adminToken());
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ email: user.email, credits: 100, full_name: "E2E User", role: "user", tier: "free", disabled: false });
    expect((await ctx.api.post("/auth/login", { email: user.email, password: user.password })).status).toBe(200);
  });

  it("answers a malformed change with 422 and an unknown user with 404", async () => {
    const user = await ctx.api.signUp();
    const token = await adminToken();
    expectEnvelope(await patchUser(user.user_id, { disabled: "yes" }, token), 422, "INVALID_INPUT");
    expectEnvelope(await patchUser(randomUUID(), { disabled: true }, token), 404, "NOT_FOUND");
  });
});

describe("API3 broken object property level authorization: what an answer shows", () => {
  it("answers with the documented properties only, and never a password, hash, key or storage path", async () => {
    const { spec, operations } = await getOperations(ctx.api);
    const op = (key: string) => operations.find((o) => o.key === key)!.op;
    const user = await ctx.api.signUp();
    const token = await adminToken();
    const { body } = await ctx.api.upload(user.token, "in.png", "image/png", await makePng());
    const job = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: body.file.id } }, user.token);

    // Each answer, and where in it the object to check is.
    const answers: Array<[string, Reply, number, Array<string | number>]> = [
      ["POST /api/v1/auth/login", await ctx.api.post("/auth/login", { email: user.email, password: user.password }), 200, []],
      ["GET /api/v1/auth/me", await ctx.api.get("/auth/me", user.token), 200, []],
      ["GET /api/v1/files/{id}", await ctx.api.get(`/files/${body.file.id}`, user.token), 200, ["file"]],
      ["GET /api/v1/jobs/{id}", await ctx.api.get(`/jobs/${job.body.id}`, user.token), 200, []],
      ["GET /api/v1/billing/credits", await ctx.api.get("/billing/credits", user.token), 200, []],
      ["GET /api/v1/admin/users", await ctx.api.get("/admin/users?limit=100", token), 200, ["data", 0]],
    ];
    for (const [key, reply, status, path] of answers) {
      expect(reply.status, key).toBe(status);
      const documented = documentedProperties(spec, op(key), status, path);
      expect(documented.length, key).toBeGreaterThan(0);
      const object = path.reduce((value: any, step) => value?.[step], reply.body);
      expect(Object.keys(object).filter((k) => !documented.includes(k)), key).toEqual([]);
      const text = JSON.stringify(reply.body);
      expect(text, key).not.toMatch(/password|hash|private|secret|\$argon|\$2[aby]\$/i);
      expect(text, key).not.toContain(ctx.stack.storageDir);
    }
  });

  it("blames no dependency for a service being down, says unknown when nobody can tell, and keeps reasons and processes for admins", async () => {
    await ctx.stack.services.stop("job-service");
    await ctx.stack.services.stop("storage-service");
    try {
      const anonymous = await ctx.api.request("GET", "/health");
      expect(anonymous.status).toBe(503);
      expect(anonymous.body.checks.database.status).toBe("up"); // auth and billing reach it
      expect(anonymous.body.checks.storage.status).toBe("unknown");
      expect(anonymous.body.services).toMatchObject({ job: { status: "down" }, storage: { status: "down" }, auth: { status: "up" } });
      expect(JSON.stringify(anonymous.body)).not.toMatch(/"error"/);
      // Which processes run where is for admins: no host names, pids or start times for anyone else.
      expect(JSON.stringify(anonymous.body)).not.toMatch(/"(instance|instances|host|pid|started_at|load)"/);

      const forAdmin = await ctx.api.request("GET", "/health", { token: await adminToken() });
      expect(forAdmin.body.services.job).toMatchObject({ status: "down", error: expect.any(String) });
      expect(forAdmin.body.services.auth.instances[0]).toMatchObject({ host: expect.any(String), pid: expect.any(Number), started_at: expect.any(String) });
      expect(forAdmin.body.checks.storage).toMatchObject({ status: "unknown", error: expect.any(String) });
      const user = await ctx.api.signUp();
      expect(JSON.stringify((await ctx.api.request("GET", "/health", { token: user.token })).body)).not.toMatch(/"error"|"host"|"pid"/);
    } finally {
      await ctx.stack.services.start("storage-service");
      await ctx.stack.services.start("job-service");
    }
  });
});
