import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { makePng, makeVideo } from "./media.ts";
import { useStack } from "./stack.ts";

const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "gateway"] });

describe("uploads and files", () => {
  it("uploads through a signed URL, confirms from the bytes, lists and downloads the same bytes", async () => {
    const { token } = await ctx.api.signUp();
    const png = await makePng();
    const confirmed = await ctx.api.upload(token, "frame.png", "image/png", png);
    expect(confirmed.status).toBe(200);
    const file = confirmed.body.file;
    expect(file).toMatchObject({ filename: "frame.png", content_type: "image/png", size: png.byteLength, folder: "input", status: "ready" });

    const list = await ctx.api.get("/files?folder=input", token);
    expect(list.body).toMatchObject({ total: 1, limit: 20, offset: 0, has_more: false });
    expect(list.body.data[0].id).toBe(file.id);

    const link = await ctx.api.get(`/files/${file.id}/download-url`, token);
    expect(link.status).toBe(200);
    const downloaded = new Uint8Array(await (await fetch(link.body.url)).arrayBuffer());
    expect(Buffer.compare(Buffer.from(downloaded), Buffer.from(png))).toBe(0);
  });

  it("takes a multipart upload, streamed to storage", async () => {
    const { token } = await ctx.api.signUp();
    const png = await makePng(200, 100);
    const form = new FormData();
    form.append("file", new Blob([png], { type: "image/png" }), "poster.png");
    const res = await fetch(`${ctx.stack.url}/api/v1/files`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: form });
    expect(res.status).toBe(201);
    const { file } = (await res.json()) as { file: { id: string; size: number; status: string; content_type: string } };
    expect(file).toMatchObject({ size: png.byteLength, status: "ready", content_type: "image/png" });
    const link = await ctx.api.get(`/files/${file.id}/download-url`, token);
    const bytes = Buffer.from(await (await fetch(link.body.url)).arrayBuffer());
    expect(bytes.equals(Buffer.from(png))).toBe(true);
  });

  it("stores a multipart upload sent as application/octet-stream (curl's default for .mp4) as what its bytes are", async () => {
    const { token } = await ctx.api.signUp();
    const form = new FormData();
    form.append("file", new Blob([makeVideo()], { type: "application/octet-stream" }), "clip.mp4");
    const res = await fetch(`${ctx.stack.url}/api/v1/files`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: form });
    expect(res.status).toBe(201);
    const { file } = (await res.json()) as { file: { id: string; kind: string; content_type: string } };
    expect(file).toMatchObject({ kind: "video", content_type: "video/mp4" });
    expect((await ctx.api.get("/files?kind=video", token)).body.data.map((f: { id: string }) => f.id)).toEqual([file.id]);
  });

  it("pages through files with limit and offset", async () => {
    const { token } = await ctx.api.signUp();
    for (let i = 0; i < 3; i++) await ctx.api.upload(token, `f${i}.png`, "image/png", await makePng(10 + i, 10));
    const first = await ctx.api.get("/files?limit=2&offset=0", token);
    const second = await ctx.api.get("/files?limit=2&offset=2", token);
    expect(first.body).toMatchObject({ total: 3, has_more: true });
    expect(first.body.data).toHaveLength(2);
    expect(second.body).toMatchObject({ total: 3, has_more: false });
    expect(second.body.data).toHaveLength(1);
  });

  it("refuses bytes that contradict the declared content type with 415, and keeps nothing", async () => {
    const { token } = await ctx.api.signUp();
    const text = new TextEncoder().encode("this is certainly not a PNG image, just some words\n".repeat(10));
    const res = await ctx.api.upload(token, "fake.png", "image/png", text);
    expectEnvelope(res, 415, "UNSUPPORTED_MEDIA_TYPE");
    const list = await ctx.api.get("/files", token);
    expect(list.body.total).toBe(0);
  });

  it("deletes a file: it is gone from the list and its id answers 404", async () => {
    const { token } = await ctx.api.signUp();
    const { body } = await ctx.api.upload(token, "bye.png", "image/png", await makePng());
    expect((await ctx.api.delete(`/files/${body.file.id}`, token)).status).toBe(204);
    expectEnvelope(await ctx.api.get(`/files/${body.file.id}`, token), 404);
    expect((await ctx.api.get("/files", token)).body.total).toBe(0);
  });
});
