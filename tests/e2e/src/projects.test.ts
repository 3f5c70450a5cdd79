import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { expectEnvelope, type Client } from "./client.ts";
import { jobHelpers, succeeded } from "./jobs.ts";
import { makePng } from "./media.ts";
import { useStack } from "./stack.ts";

// worker-image and the model emulator: thumbnails for real costs, a slow generation to delete a project under.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "model-emulator", "gateway"] });
const { settled, download } = jobHelpers(ctx);

const patch = (api: Client, path: string, json: unknown, token: string) => api.request("PATCH", `/api/v1${path}`, { json, token });

async function createProject(token: string, name = "Hat campaign") {
  const res = await ctx.api.post("/projects", { name }, token);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; name: string };
}

/** A multipart upload into a project, as a browser form would send it; the raw reply. */
async function uploadMultipart(token: string, projectId: string, png: Uint8Array) {
  const form = new FormData();
  form.append("project_id", projectId);
  form.append("file", new Blob([png], { type: "image/png" }), "in.png");
  const res = await fetch(`${ctx.stack.url}/api/v1/files`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: form });
  return { status: res.status, body: (await res.json()) as any };
}

/** A signed upload into a project, confirmed; the file. */
async function uploadInto(token: string, projectId: string, png: Uint8Array) {
  const ticket = await ctx.api.post("/uploads", { filename: "in.png", content_type: "image/png", size: png.byteLength, project_id: projectId }, token);
  expect(ticket.status, JSON.stringify(ticket.body)).toBe(201);
  const put = await fetch(ticket.body.upload_url, { method: "PUT", headers: ticket.body.headers, body: png });
  expect(put.ok).toBe(true);
  const confirmed = await ctx.api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, token);
  expect(confirmed.status).toBe(200);
  return confirmed.body.file as { id: string; project_id: string };
}

/** Enqueues a job in a project and waits for its end; its final state. */
async function runInProject(token: string, projectId: string, type: string, input: Record<string, unknown>) {
  const job = await ctx.api.post("/jobs", { type, input, project_id: projectId }, token);
  expect(job.status, JSON.stringify(job.body)).toBe(202);
  return succeeded(await settled(job.body.id, token));
}

describe("projects", () => {
  it("creates, pages, reads, renames and deletes a project; a deleted one is 404 and gone from the list", async () => {
    const u = await ctx.api.signUp();
    const created = await ctx.api.post("/projects", { name: "  Launch  ", description: "spring" }, u.token);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "Launch", description: "spring", job_count: 0, created_at: expect.any(String), updated_at: expect.any(String) });
    for (const name of ["Second", "Third"]) await createProject(u.token, name);

    const first = await ctx.api.get("/projects?limit=2", u.token);
    expect(first.body).toMatchObject({ total: 3, limit: 2, offset: 0, has_more: true });
    expect(first.body.data.map((p: { name: string }) => p.name)).toEqual(["Third", "Second"]);
    const rest = await ctx.api.get("/projects?limit=2&offset=2", u.token);
    expect(rest.body).toMatchObject({ total: 3, has_more: false });
    expect(rest.body.data.map((p: { id: string }) => p.id)).toEqual([created.body.id]);

    const renamed = await patch(ctx.api, `/projects/${created.body.id}`, { name: "Launch v2", description: null }, u.token);
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id: created.body.id, name: "Launch v2", description: null });
    expect((await ctx.api.get(`/projects/${created.body.id}`, u.token)).body.name).toBe("Launch v2");

    expectEnvelope(await ctx.api.post("/projects", { name: "" }, u.token), 422, "INVALID_INPUT");
    expectEnvelope(await ctx.api.post("/projects", { name: "x".repeat(201) }, u.token), 422, "INVALID_INPUT");
    expectEnvelope(await ctx.api.post("/projects", { name: "ok", description: "d".repeat(2001) }, u.token), 422, "INVALID_INPUT");
    expectEnvelope(await patch(ctx.api, `/projects/${created.body.id}`, {}, u.token), 422, "INVALID_INPUT");

    const deleted = await ctx.api.delete(`/projects/${created.body.id}`, u.token);
    expect(deleted.status).toBe(204);
    expectEnvelope(await ctx.api.get(`/projects/${created.body.id}`, u.token), 404, "NOT_FOUND");
    expectEnvelope(await patch(ctx.api, `/projects/${created.body.id}`, { name: "back" }, u.token), 404, "NOT_FOUND");
    expect((await ctx.api.get("/projects", u.token)).body.total).toBe(2);
  });

  it("answers 404 for another user's project on every route, and for its id on uploads and jobs", async () => {
    const owner = await ctx.api.signUp();
    const other = await ctx.api.signUp();
    const project = await createProject(owner.token);
    const id = project.id;
    const png = await makePng();
    const routes = [
      ctx.api.get(`/projects/${id}`, other.token),
      patch(ctx.api, `/projects/${id}`, { name: "mine now" }, other.token),
      ctx.api.get(`/projects/${id}/assets`, other.token),
      ctx.api.post(`/projects/${id}/approvals`, { file_ids: [randomUUID()], approved: true }, other.token),
      ctx.api.get(`/projects/${id}/costs`, other.token),
      ctx.api.delete(`/projects/${id}`, other.token),
      ctx.api.post("/uploads", { filename: "a.png", content_type: "image/png", size: png.byteLength, project_id: id }, other.token),
      uploadMultipart(other.token, id, png),
    ];
    for (const reply of await Promise.all(routes)) expectEnvelope(reply as any, 404, "NOT_FOUND");

    const { body } = await ctx.api.upload(other.token, "in.png", "image/png", png);
    const job = await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: body.file.id }, project_id: id }, other.token);
    expectEnvelope(job, 404, "NOT_FOUND");
    expect((await ctx.api.get("/jobs", other.token)).body.total).toBe(0);
    // Neither a slot taken nor a credit held for the refused job.
    expect((await ctx.api.get("/billing/credits", other.token)).body).toMatchObject({ credits: 100, reserved: 0 });
    expect((await ctx.api.get("/files", other.token)).body.total).toBe(1);

    // Untouched by all of it, and still the owner's.
    expect((await ctx.api.get(`/projects/${id}`, owner.token)).body).toMatchObject({ name: "Hat campaign" });
    // A deleted project is no project either.
    expect((await ctx.api.delete(`/projects/${id}`, owner.token)).status).toBe(204);
    expectEnvelope(await ctx.api.post("/jobs", { type: "image.thumbnail", input: { file_id: body.file.id }, project_id: id }, owner.token), 404, "NOT_FOUND");
    expectEnvelope((await uploadMultipart(owner.token, id, png)) as any, 404, "NOT_FOUND");
  });

  it("deletes a project with its running job canceled and refunded, and its files gone", async () => {
    const u = await ctx.api.signUp();
    const project = await createProject(u.token);
    const input = await uploadInto(u.token, project.id, await makePng());
    const multipart = await uploadMultipart(u.token, project.id, await makePng(40, 40));
    expect(multipart.status).toBe(201);
    expect(multipart.body.file.project_id).toBe(project.id);
    const outside = await ctx.api.upload(u.token, "keep.png", "image/png", await makePng());

    const job = await ctx.api.post("/jobs", { type: "image.generate", input: { prompt: "[emulator:slow] a very long render" }, project_id: project.id }, u.token);
    expect(job.status).toBe(202);
    const deadline = Date.now() + 30_000;
    while ((await ctx.api.get(`/jobs/${job.body.id}`, u.token)).body.status !== "running") {
      if (Date.now() > deadline) throw new Error("the job never started");
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await ctx.api.get("/billing/credits", u.token)).body.reserved).toBe(job.body.credits.amount);

    expect((await ctx.api.delete(`/projects/${project.id}`, u.token)).status).toBe(204);
    expect(await settled(job.body.id, u.token)).toMatchObject({ status: "canceled", credits: { state: "released" } });
    expect((await ctx.api.get("/billing/credits", u.token)).body).toMatchObject({ credits: 100, reserved: 0 });
    for (const fileId of [input.id, multipart.body.file.id]) expectEnvelope(await ctx.api.get(`/files/${fileId}/download-url`, u.token), 404, "NOT_FOUND");
    // Files outside the project stay.
    expect((await ctx.api.get(`/files/${outside.body.file.id}/download-url`, u.token)).status).toBe(200);
    expectEnvelope(await ctx.api.get(`/projects/${project.id}/assets`, u.token), 404, "NOT_FOUND");
    expect((await ctx.api.get("/projects", u.token)).body.total).toBe(0);
  });

  it("lists a project's inputs and outputs with role, job, order and approval; approvals are all or nothing", async () => {
    const u = await ctx.api.signUp();
    const project = await createProject(u.token);
    const input = await uploadInto(u.token, project.id, await makePng(64, 48));
    const thumb = await runInProject(u.token, project.id, "image.thumbnail", { file_id: input.id, width: 32, height: 32 });
    const generated = await runInProject(u.token, project.id, "image.generate", { prompt: "two hats", num_images: 2 });
    const [first, second] = generated.result.files.map((f: { file_id: string }) => f.file_id);

    const all = await ctx.api.get(`/projects/${project.id}/assets`, u.token);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ total: 4, has_more: false });
    const byId = Object.fromEntries(all.body.data.map((a: { id: string }) => [a.id, a]));
    expect(byId[input.id]).toMatchObject({ role: "input", folder: "input", job_id: null, order: null, stage: null, approved: null, kind: "image" });
    expect(byId[thumb.result.files[0].file_id]).toMatchObject({ role: "output", job_id: thumb.id, order: 0, stage: null, project_id: project.id });
    expect(byId[first]).toMatchObject({ role: "output", job_id: generated.id, order: 0 });
    expect(byId[second]).toMatchObject({ role: "output", job_id: generated.id, order: 1 });
    expect(all.body.data[0].id).toBe(input.id);
    expect((await ctx.api.get(`/projects/${project.id}/assets?limit=3&offset=3`, u.token)).body).toMatchObject({ total: 4, has_more: false, data: [expect.any(Object)] });
    expect((await ctx.api.get(`/projects/${project.id}/assets?kind=video`, u.token)).body.total).toBe(0);
    expect((await ctx.api.get(`/projects/${project.id}/assets?kind=image`, u.token)).body.total).toBe(4);
    expect((await ctx.api.get(`/projects/${project.id}/assets?stage=images`, u.token)).body.total).toBe(0);
    expectEnvelope(await ctx.api.get(`/projects/${project.id}/assets?approved=maybe`, u.token), 422, "INVALID_INPUT");

    const approved = await ctx.api.post(`/projects/${project.id}/approvals`, { file_ids: [first], approved: true }, u.token);
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ project_id: project.id, approved: true, file_ids: [first], approved_count: 1 });
    expect((await ctx.api.post(`/projects/${project.id}/approvals`, { file_ids: [second], approved: false }, u.token)).status).toBe(200);

    // One file from outside the project: nothing is marked, the valid one included.
    const stranger = await ctx.api.upload(u.token, "else.png", "image/png", await makePng());
    const mixed = await ctx.api.post(`/projects/${project.id}/approvals`, { file_ids: [second, stranger.body.file.id], approved: true }, u.token);
    expectEnvelope(mixed, 422, "INVALID_INPUT");
    expect(mixed.body.error.details.file_ids).toEqual([stranger.body.file.id]);
    expectEnvelope(await ctx.api.post(`/projects/${project.id}/approvals`, { file_ids: [], approved: true }, u.token), 422, "INVALID_INPUT");

    const yes = await ctx.api.get(`/projects/${project.id}/assets?approved=true`, u.token);
    expect(yes.body.data.map((a: { id: string; approved: boolean }) => [a.id, a.approved])).toEqual([[first, true]]);
    const no = await ctx.api.get(`/projects/${project.id}/assets?approved=false&kind=image`, u.token);
    expect(no.body.data.map((a: { id: string; approved: boolean }) => [a.id, a.approved])).toEqual([[second, false]]);
    expect(await download(u.token, first)).toBeInstanceOf(Buffer);
  });

  it("sums a project's costs from what its jobs were charged: credits as the ledger captured them, USD as the provider charged", async () => {
    const u = await ctx.api.signUp();
    const project = await createProject(u.token);
    const empty = await ctx.api.get(`/projects/${project.id}/costs`, u.token);
    expect(empty.body).toEqual({ project_id: project.id, total_credits: 0, total_usd: 0, breakdown: [] });

    const input = await uploadInto(u.token, project.id, await makePng(64, 48));
    const thumbs = [
      await runInProject(u.token, project.id, "image.thumbnail", { file_id: input.id }),
      await runInProject(u.token, project.id, "image.thumbnail", { file_id: input.id, width: 64, height: 64 }),
    ];
    const generated = await runInProject(u.token, project.id, "image.generate", { prompt: "a hat", num_images: 2 });
    // A job outside the project is not counted.
    await runInProject(u.token, (await createProject(u.token, "other")).id, "image.thumbnail", { file_id: (await ctx.api.upload(u.token, "b.png", "image/png", await makePng())).body.file.id });

    const ledger = (await ctx.api.get("/billing/ledger?limit=100", u.token)).body.data as { kind: string; amount: number; job_id: string }[];
    // A capture keeps what the job's reserve took from the balance (the capture row itself moves 0).
    const captured = (jobId: string) =>
      ledger.some((e) => e.kind === "capture" && e.job_id === jobId) ? -ledger.filter((e) => e.kind === "reserve" && e.job_id === jobId).reduce((s, e) => s + e.amount, 0) : 0;
    const thumbCredits = thumbs.reduce((s, j) => s + captured(j.id), 0);
    expect(thumbCredits).toBeGreaterThan(0);

    const costs = await ctx.api.get(`/projects/${project.id}/costs`, u.token);
    expect(costs.status).toBe(200);
    expect(costs.body.total_credits).toBe(thumbCredits + captured(generated.id));
    expect(costs.body.total_credits).toBe([...thumbs, generated].reduce((s, j) => s + j.credits.amount, 0));
    expect(costs.body.total_usd).toBe(0);
    expect(costs.body.breakdown).toEqual([
      { job_type: "image.generate", model: generated.result.provider.model, credits: captured(generated.id), usd: 0, units: 2, count: 1 },
      { job_type: "image.thumbnail", model: null, credits: thumbCredits, usd: 0, units: 2, count: 2 },
    ]);
    expect((await ctx.api.get(`/projects/${project.id}`, u.token)).body.job_count).toBe(3);
  });
});
