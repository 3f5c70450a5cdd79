import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { makePng } from "./media.ts";
import { useStack } from "./stack.ts";

const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "gateway"] });
const FREE_QUOTA = 5 * 1024 ** 3;
let sql: postgres.Sql | undefined;
afterAll(async () => sql?.end());

describe("the storage quota per tier (ADR 031)", () => {
  it("shows what is used against the quota, and refuses an upload that would pass it with 413 and the figures, signed, multipart or chunked", async () => {
    const u = await ctx.api.signUp();
    const png = await makePng(64, 48);
    expect((await ctx.api.upload(u.token, "a.png", "image/png", png)).status).toBe(200);
    const credits = await ctx.api.get("/billing/credits", u.token);
    expect(credits.body.storage).toEqual({ used_bytes: png.byteLength, quota_bytes: FREE_QUOTA });

    // Nearly full: a stored file of the rest but 100 bytes, as years of uploads would leave it.
    sql ??= postgres(ctx.stack.databaseUrl, { max: 1 });
    const big = randomUUID();
    const used = FREE_QUOTA - 100;
    await sql`insert into storage.files (id, owner_id, folder, filename, content_type, size, status, storage_key)
              values (${big}, ${u.user_id}, 'input', 'big.mp4', 'video/mp4', ${used - png.byteLength}, 'ready', ${`${u.user_id}/${big}`})`;
    expect((await ctx.api.get("/billing/credits", u.token)).body.storage).toEqual({ used_bytes: used, quota_bytes: FREE_QUOTA });

    const signed = await ctx.api.post("/uploads", { filename: "b.png", content_type: "image/png", size: png.byteLength }, u.token);
    expectEnvelope(signed, 413, "STORAGE_QUOTA_EXCEEDED");
    expect(signed.body.error.details).toEqual({ used_bytes: used, quota_bytes: FREE_QUOTA, file_size: png.byteLength });

    const form = new FormData();
    form.append("file", new Blob([png], { type: "image/png" }), "c.png");
    const res = await fetch(`${ctx.stack.url}/api/v1/files`, { method: "POST", headers: { authorization: `Bearer ${u.token}` }, body: form });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string; details: unknown } }).error).toMatchObject({
      code: "STORAGE_QUOTA_EXCEEDED",
      details: { used_bytes: used, quota_bytes: FREE_QUOTA, file_size: png.byteLength },
    });
    // A chunked upload says its whole size at init: refused there.
    const chunked = await ctx.api.post("/chunked-upload/init", { filename: "d.mp4", total_size: 6 * 1024 ** 2, chunk_size: 5 * 1024 ** 2, file_type: "video/mp4" }, u.token);
    expectEnvelope(chunked, 413, "STORAGE_QUOTA_EXCEEDED");
    expect(chunked.body.error.details).toEqual({ used_bytes: used, quota_bytes: FREE_QUOTA, file_size: 6 * 1024 ** 2 });

    // Nothing of any was kept.
    expect((await ctx.api.get("/billing/credits", u.token)).body.storage.used_bytes).toBe(used);
    expect((await ctx.api.get("/files", u.token)).body.total).toBe(2);
  });
});
