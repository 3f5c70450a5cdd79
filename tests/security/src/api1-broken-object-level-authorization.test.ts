// OWASP API1:2023 Broken Object Level Authorization: every object (file, upload, job, its events and
// outputs) is reached by id, so each id a user did not make answers as if it did not exist.
import { randomUUID } from "node:crypto";
import { expectEnvelope } from "@cutroom/e2e/client";
import { jobHelpers } from "@cutroom/e2e/jobs";
import { makePng } from "@cutroom/e2e/media";
import { useStack } from "@cutroom/e2e/stack";
import { watchJob } from "@cutroom/e2e/watch";
import WebSocket from "ws";
import { describe, expect, it } from "vitest";

// worker-image runs the jobs, so that outputs exist and a watched job ends.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"] });

const { userWithImage, settled } = jobHelpers(ctx);

describe("API1 broken object level authorization: files", () => {
  it("never shows one user's files to another: reading, downloading or deleting them is 404", async () => {
    const alice = await ctx.api.signUp();
    const bob = await ctx.api.signUp();
    const { body } = await ctx.api.upload(alice.token, "mine.png", "image/png", await makePng());
    const id = body.file.id;
    expectEnvelope(await ctx.api.get(`/files/${id}`, bob.token), 404, "NOT_FOUND");
    expectEnvelope(await ctx.api.get(`/files/${id}/download-url`, bob.token), 404);
    expectEnvelope(await ctx.api.delete(`/files/${id}`, bob.token), 404);
    expect((await ctx.api.get("/files", bob.token)).body.total).toBe(0);
    expect((await ctx.api.get(`/files/${id}`, alice.token)).status).toBe(200);
  });

  it("lets nobody but its owner confirm an upload: another user's confirm is 404 and leaves it to its owner", async () => {
    const alice = await ctx.api.signUp();
    const bob = await ctx.api.signUp();
    const png = await makePng();
    const ticket = await ctx.api.post("/uploads", { filename: "a.png", content_type: "image/png", size: png.byteLength }, alice.token);
    expect((await fetch(ticket.body.upload_url, { method: "PUT", headers: ticket.body.headers, body: png })).status).toBe(200);
    expectEnvelope(await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, bob.token), 404, "NOT_FOUND");
    expect((await ctx.api.get("/files", bob.token)).body.total).toBe(0);
    const confirmed = await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, alice.token);
    expect(confirmed.status).toBe(200);
    expect(confirmed.body.file).toMatchObject({ id: ticket.body.file_id, status: "ready" });
  });
});

describe("API1 broken object level authorization: jobs", () => {
  it("never shows one user's jobs to another: reading or cancelling them is 404", async () => {
    const alice = await userWithImage();
    const bob = await ctx.api.signUp();
    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: alice.fileId, width: 8 } }, alice.token);
    expectEnvelope(await ctx.api.get(`/jobs/${job.body.id}`, bob.token), 404);
    expectEnvelope(await ctx.api.post(`/jobs/${job.body.id}/cancel`, {}, bob.token), 404);
    expect((await ctx.api.get("/jobs", bob.token)).body.total).toBe(0);
    // Nor can Bob run a job on Alice's file.
    expectEnvelope(await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: alice.fileId, width: 8 } }, bob.token), 422);
  });

  it("keeps a job's output files to the job's owner: another user can neither read, download nor reuse them", async () => {
    const alice = await userWithImage();
    const bob = await userWithImage();
    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: alice.fileId, width: 16, format: "webp" } }, alice.token);
    const done = await settled(job.body.id, alice.token);
    expect(done.status).toBe("succeeded");
    const output = done.result.files[0].file_id as string;
    expect((await ctx.api.get(`/files/${output}`, alice.token)).body.file).toMatchObject({ folder: "output" });
    expectEnvelope(await ctx.api.get(`/files/${output}`, bob.token), 404, "NOT_FOUND");
    expectEnvelope(await ctx.api.get(`/files/${output}/download-url`, bob.token), 404, "NOT_FOUND");
    expectEnvelope(await ctx.api.delete(`/files/${output}`, bob.token), 404, "NOT_FOUND");
    expectEnvelope(await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: output } }, bob.token), 422, "INVALID_INPUT");
    expect((await ctx.api.get(`/files/${output}`, alice.token)).status).toBe(200);
  });

  it("keeps Idempotency-Keys per user: another user's key neither returns their job nor conflicts with it", async () => {
    const alice = await userWithImage();
    const bob = await userWithImage();
    const key = randomUUID();
    const theirs = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: alice.fileId, width: 8 } }, alice.token, { "idempotency-key": key });
    expect(theirs.status).toBe(202);
    // The same key with the same body shape and another body: Bob gets a job of his own both ways.
    const mine = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: bob.fileId, width: 8 } }, bob.token, { "idempotency-key": key });
    expect(mine.status).toBe(202);
    expect(mine.body.id).not.toBe(theirs.body.id);
    expect(mine.headers.get("idempotent-replayed")).toBeNull();
    expect(mine.body.input.file_id).toBe(bob.fileId);
    expect((await ctx.api.get("/jobs", bob.token)).body.data.map((j: { id: string }) => j.id)).toEqual([mine.body.id]);
  });
});

describe("API1 broken object level authorization: live events", () => {
  it("closes with 1008 when the job is someone else's or does not exist, for any way of passing the token", async () => {
    const alice = await ctx.api.signUp();
    const bob = await ctx.api.signUp();
    const { body } = await ctx.api.upload(alice.token, "a.png", "image/png", await makePng());
    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: body.file.id, width: 8 } }, alice.token);
    for (const auth of ["header", "query", "protocol"] as const) {
      expect((await watchJob(ctx.stack.url, bob.token, job.body.id, { auth })).closeCode).toBe(1008);
      expect((await watchJob(ctx.stack.url, alice.token, randomUUID(), { auth })).closeCode).toBe(1008);
    }
    expect((await watchJob(ctx.stack.url, "not-a-token", job.body.id)).closeCode).toBe(1008);
    const own = await watchJob(ctx.stack.url, alice.token, job.body.id, { auth: "protocol", since: 0 });
    expect(own.closeCode).toBe(1000);
    // After the end: the snapshot and the terminal event, nothing missing.
    const late = await watchJob(ctx.stack.url, alice.token, job.body.id, { auth: "query" });
    expect(late.messages.map((m) => m.type)).toEqual(["snapshot", "result"]);
    expect(late.messages[0].job.status).toBe("succeeded");
  });

  it("answers another user's job on SSE with 404 and on /ws with an error, sending none of its events", async () => {
    const alice = await userWithImage();
    const bob = await ctx.api.signUp();
    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: alice.fileId, width: 8 } }, alice.token);
    expect((await settled(job.body.id, alice.token)).status).toBe("succeeded");

    const sse = await ctx.api.request("GET", `/api/v1/jobs/${job.body.id}/events?since=0`, { token: bob.token });
    expectEnvelope(sse, 404, "NOT_FOUND");

    const ws = new WebSocket(`${ctx.stack.url.replace(/^http/, "ws")}/ws`, { headers: { authorization: `Bearer ${bob.token}` } });
    const got: any[] = [];
    ws.on("message", (d) => got.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once("open", r));
    ws.send(JSON.stringify({ type: "subscribe_job", job_id: job.body.id, since: 0 }));
    ws.send(JSON.stringify({ type: "ping" }));
    const deadline = Date.now() + 5000;
    while (!got.some((m) => m.type === "error") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    ws.close();
    expect(got.filter((m) => m.type !== "pong")).toEqual([{ type: "error", job_id: job.body.id, code: "NOT_FOUND", message: expect.any(String) }]);
  });
});
