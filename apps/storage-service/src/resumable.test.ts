import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Caller, RpcMethod, RpcReq } from "@cutroom/contracts";
import { sqlTag as sql } from "@cutroom/db";
import { freePort } from "@cutroom/devstack";
import { createRpcClient, serveRpc } from "@cutroom/runtime";
import { createMigratedDb, silentLogger, startTestNats } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSignedPutReceiver, createStorageHandlers, resumableDeps, type StorageDeps } from "./app.ts";
import type { StorageDriver } from "./drivers/driver.ts";
import { FsDriver } from "./drivers/fs-driver.ts";
import { S3Driver } from "./drivers/s3-driver.ts";
import { Env } from "./env.ts";
import { blobRoutes, buildHttp, uploadRoutes } from "./http.ts";
import { createUploadReceivers, sweepUploads } from "./resumable.ts";
import { createSigner } from "./signed-token.ts";

const MiB = 1024 ** 2;
const newUser = (): Caller => ({ user_id: randomUUID(), role: "user", tier: "free" });

/** storage-service's RPC and data plane on a real driver and Postgres, as the sweeper meets them. */
async function startStorage(makeDriver: (ctx: { port: number; signer: ReturnType<typeof createSigner> }) => StorageDriver) {
  const db = await createMigratedDb("resumable");
  const nats = await startTestNats();
  const port = await freePort();
  const signer = createSigner(randomBytes(32).toString("hex"));
  const driver = makeDriver({ port, signer });
  const deps: StorageDeps = { db: db.db, driver, signer, internalUrl: `http://127.0.0.1:${port}`, uploadExpirySec: 3600 };
  const http = buildHttp(silentLogger(), [uploadRoutes(createUploadReceivers(resumableDeps(deps))), ...(driver instanceof FsDriver ? [blobRoutes(driver, createSignedPutReceiver(deps))] : [])]);
  await http.listen({ port, host: "127.0.0.1" });
  serveRpc(await nats.connect(), "storage", createStorageHandlers(deps), silentLogger());
  const rpc = createRpcClient(await nats.connect(), { timeoutMs: 5000 });
  const as =
    (caller: Caller) =>
    <M extends RpcMethod<"storage">>(method: M, body: RpcReq<"storage", M>) =>
      rpc.call("storage", method, body, { caller });
  return {
    db,
    driver,
    deps: resumableDeps(deps),
    as,
    stop: async () => {
      await http.close();
      await nats.stop();
      await db.close();
    },
  };
}

function describeSweeper(name: string, start: () => ReturnType<typeof startStorage>, partsLeft?: (s: Awaited<ReturnType<typeof startStorage>>) => Promise<string[]>) {
  describe(`sweeping abandoned uploads (${name})`, () => {
    let s: Awaited<ReturnType<typeof startStorage>>;
    beforeAll(async () => {
      s = await start();
    });
    afterAll(async () => s?.stop());

    /** A chunked upload with its first chunk in, and a tus upload with a tail (bytes short of a part). */
    const abandon = async (caller: Caller) => {
      const call = s.as(caller);
      const chunked = await call("createResumableUpload", { filename: "a.bin", total_size: 6 * MiB, chunk_size: 5 * MiB, file_type: "application/octet-stream", protocol: "chunked", max_bytes: 100 * MiB });
      const { url } = await call("resumableUploadUrl", { upload_id: chunked.upload_id });
      expect((await fetch(`${url}/chunks/0`, { method: "PUT", body: randomBytes(5 * MiB) })).status).toBe(200);
      const tus = await call("createResumableUpload", { filename: "b.bin", total_size: 3 * MiB, file_type: "application/octet-stream", protocol: "tus", max_bytes: 100 * MiB });
      const tusUrl = (await call("resumableUploadUrl", { upload_id: tus.upload_id })).url;
      const patched = await fetch(`${tusUrl}/tus`, { method: "PATCH", headers: { "upload-offset": "0" }, body: randomBytes(MiB) });
      expect(await patched.json()).toEqual({ offset: MiB });
      const [row] = await s.db.db.execute<{ tail_key: string; multipart_id: string }>(sql`select tail_key, multipart_id from storage.uploads where id = ${tus.upload_id}`);
      const [chunkedRow] = await s.db.db.execute<{ multipart_id: string }>(sql`select multipart_id from storage.uploads where id = ${chunked.upload_id}`);
      return { ids: [chunked.upload_id, tus.upload_id], tailKey: row!.tail_key, multipartIds: [chunkedRow!.multipart_id, row!.multipart_id] };
    };

    it("keeps live uploads, and deletes an expired one's parts, tail and file once it is past its expiry (404 from then on)", async () => {
      const caller = newUser();
      const call = s.as(caller);
      const { ids, tailKey, multipartIds } = await abandon(caller);
      expect(await s.driver.size(tailKey)).toBe(MiB);

      await sweepUploads(s.deps);
      expect((await call("getResumableUpload", { upload_id: ids[0]! })).received).toEqual([0]);

      await s.db.db.execute(sql`update storage.uploads set expires_at = now() - interval '1 second' where id in (${ids[0]!}, ${ids[1]!})`);
      for (const id of ids) await expect(call("getResumableUpload", { upload_id: id })).rejects.toMatchObject({ code: "NOT_FOUND" });
      await sweepUploads(s.deps);

      expect(await s.driver.size(tailKey)).toBeUndefined();
      const left = await s.db.db.execute(sql`select 1 from storage.files where owner_id = ${caller.user_id} union all select 1 from storage.uploads where owner_id = ${caller.user_id}`);
      expect(left).toHaveLength(0);
      if (partsLeft) for (const id of multipartIds) expect(await partsLeft(s)).not.toContain(id);
    });

    it("deletes a signed upload never confirmed after the expiry, bytes and record", async () => {
      const caller = newUser();
      const call = s.as(caller);
      const ticket = await call("createUpload", { filename: "c.bin", content_type: "application/octet-stream", size: 1000, max_bytes: 10_000 });
      expect((await fetch(ticket.upload_url, { method: "PUT", headers: ticket.headers, body: randomBytes(1000) })).status).toBe(200);
      const key = `${caller.user_id}/${ticket.file_id}`;
      await s.db.db.execute(sql`update storage.files set created_at = now() - interval '2 hours' where id = ${ticket.file_id}`);
      await sweepUploads(s.deps);
      await expect(call("getFile", { file_id: ticket.file_id })).rejects.toMatchObject({ code: "NOT_FOUND" });
      expect(await s.driver.size(key)).toBeUndefined();
      expect(await s.driver.size(`incoming/${key}`)).toBeUndefined();
    });
  });
}

let dir: string;
describeSweeper(
  "fs",
  () => {
    dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "resumable-"));
    return startStorage(({ port, signer }) => new FsDriver({ dir, publicUrl: `http://127.0.0.1:${port}/storage`, internalUrl: `http://127.0.0.1:${port}`, signer }));
  },
  (s) => (s.driver as FsDriver).listMultipart(),
);
afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));

const env = Env.parse(process.env);
// s3rver cannot abort a multipart upload (nor list one): there the records, tails and objects are checked.
if (env.S3_ENDPOINT && env.S3_BUCKET) {
  describeSweeper("s3", () =>
    startStorage(() => new S3Driver({ endpoint: env.S3_ENDPOINT, region: env.S3_REGION, bucket: env.S3_BUCKET!, accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY })),
  );
}
