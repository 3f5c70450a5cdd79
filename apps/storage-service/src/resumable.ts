import { createHash, randomUUID } from "node:crypto";
import { pipeline as pipeStreams, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError, maxUploadChunks, type Caller, type CompletedUpload, type FileObject, type ResumableUpload, type RpcReq } from "@cutroom/contracts";
import type { RpcContext } from "@cutroom/runtime";
import type { StorageDriver } from "./drivers/driver.ts";
import { deleteFileRow, getFileRow, markRejected, storageKey, toFileObject, type FileRow } from "./files.ts";
import { checkQuota } from "./quota.ts";
import type { Signer } from "./signed-token.ts";
import {
  commitPatch,
  deleteUploadRow,
  expiredUploads,
  getLiveUpload,
  getPart,
  insertUpload,
  listParts,
  lockUpload,
  moveUpload,
  recordPart,
  renewLock,
  staleTickets,
  unlockUpload,
  type PartRow,
  type UploadRow,
} from "./uploads.ts";
import type { Db } from "@cutroom/db";

/** tus PATCH bodies are cut into parts of this size (S3's parts must be 5 MiB at least); one is held in memory per PATCH. */
export const tusPartBytes = 8 * 1024 ** 2;
/** How long one tus PATCH holds its upload without storing a part; a PATCH stalled longer is cut by the gateway anyway. */
const lockLeaseMs = 2 * 60_000;
/** Upload URLs of the data plane (a chunk, a complete, a PATCH) are signed for one request's start. */
const urlTtlSec = 15 * 60;

export interface ResumableDeps {
  db: Db;
  driver: StorageDriver;
  signer: Signer;
  internalUrl: string;
  /** An upload not completed this long after it started is swept, bytes and all (UPLOAD_EXPIRY_S). */
  uploadExpirySec: number;
  /** Checks the joined bytes as a signed upload's confirm does (size, real type, media facts); throws on refusal. */
  finalise: (row: FileRow, size: number) => Promise<FileObject>;
  /** A client's signed download URL of a ready file. */
  downloadUrl: (row: FileRow) => Promise<string>;
}

/** A resend of a part goes to the other of its index's two driver parts, so a bad resend never replaces the good one recorded. */
const partNumberFor = (index: number, recorded?: PartRow) => (recorded?.partNumber === 2 * index + 1 ? 2 * index + 2 : 2 * index + 1);

const notFound = (uploadId: string) => new AppError("NOT_FOUND", "upload not found (unknown, expired or not yours)", { upload_id: uploadId });

/** The RPC methods of resumable uploads (records and ownership); bytes come through `createUploadReceivers`. */
export function createResumableHandlers(deps: ResumableDeps) {
  const { db, driver, signer } = deps;

  const owned = async (ctx: RpcContext, uploadId: string) => {
    const row = await getLiveUpload(db, uploadId, callerOf(ctx).user_id);
    if (!row) throw notFound(uploadId);
    return row;
  };

  return {
    createResumableUpload: async (body: RpcReq<"storage", "createResumableUpload">, ctx: RpcContext) => {
      const caller = callerOf(ctx);
      if (body.total_size > body.max_bytes) {
        throw new AppError("PAYLOAD_TOO_LARGE", `the file is ${body.total_size} bytes; the ${caller.tier} tier takes files up to ${body.max_bytes} bytes`, {
          total_size: body.total_size,
          max_bytes: body.max_bytes,
          tier: caller.tier,
        });
      }
      // Its file row holds total_size from here on, so uploads under way count against the quota too (ADR 031).
      await checkQuota(db, caller, body.total_size);
      const chunkSize = body.protocol === "tus" ? tusPartBytes : body.chunk_size;
      if (!chunkSize) throw new AppError("INVALID_INPUT", "chunk_size is required", { fields: [{ path: "chunk_size", message: "required" }] });
      const chunkCount = Math.ceil(body.total_size / chunkSize);
      if (chunkCount > maxUploadChunks) {
        throw new AppError("INVALID_INPUT", `that makes ${chunkCount} chunks; at most ${maxUploadChunks}: send bigger chunks`, { fields: [{ path: "chunk_size", message: "too small for total_size" }] });
      }
      const fileId = randomUUID();
      const key = storageKey(caller.user_id, fileId);
      const multipartId = await driver.startMultipart(key, { contentType: body.file_type });
      try {
        const row = await insertUpload(
          db,
          {
            id: randomUUID(),
            ownerId: caller.user_id,
            protocol: body.protocol,
            totalSize: body.total_size,
            chunkSize,
            chunkCount,
            sha256: body.sha256 ?? null,
            multipartId,
            expiresAt: new Date(Date.now() + deps.uploadExpirySec * 1000),
          },
          { id: fileId, projectId: body.project_id, filename: body.filename, contentType: body.file_type },
        );
        return { upload_id: row.id, chunk_count: chunkCount, expires_at: row.expiresAt.toISOString() };
      } catch (err) {
        await driver.abortMultipart(key, multipartId).catch(() => {});
        throw err;
      }
    },

    getResumableUpload: async ({ upload_id }: { upload_id: string }, ctx: RpcContext) => describeUpload(db, await owned(ctx, upload_id)),

    resumableUploadUrl: async ({ upload_id }: { upload_id: string }, ctx: RpcContext) => {
      const row = await owned(ctx, upload_id);
      const token = signer.sign({ op: "upload", key: row.id, exp: Date.now() + urlTtlSec * 1000 });
      return { url: `${deps.internalUrl}/storage/uploads/${token}`, upload: await describeUpload(db, row) };
    },

    deleteResumableUpload: async ({ upload_id }: { upload_id: string }, ctx: RpcContext) => {
      const row = await owned(ctx, upload_id);
      // A completed upload's file stays (DELETE files/{id} removes it); anything else goes with its bytes.
      if (row.status !== "completed") await dropUpload(deps, row, await getFileRow(db, row.fileId));
      await deleteUploadRow(db, row.id);
      return { deleted: true as const };
    },
  };
}

async function describeUpload(db: Db, row: UploadRow): Promise<ResumableUpload> {
  const [parts, file] = await Promise.all([listParts(db, row.id), getFileRow(db, row.fileId)]);
  const received = parts.map((p) => p.partIndex);
  const have = new Set(received);
  const missing = row.status === "completed" ? [] : Array.from({ length: row.chunkCount }, (_, i) => i).filter((i) => !have.has(i));
  return {
    upload_id: row.id,
    protocol: row.protocol,
    status: row.status,
    filename: file?.filename ?? "",
    file_type: file?.contentType ?? "",
    total_size: row.totalSize,
    chunk_size: row.chunkSize,
    chunk_count: row.chunkCount,
    chunks_received: received.length,
    received,
    missing,
    offset: row.protocol === "tus" ? row.offset : parts.reduce((n, p) => n + p.size, 0),
    file_id: row.fileId,
    expires_at: row.expiresAt.toISOString(),
    created_at: row.createdAt.toISOString(),
  };
}

/** The data plane's side: a chunk, a complete, a tus PATCH; each authorised by a token from `resumableUploadUrl`. */
export function createUploadReceivers(deps: ResumableDeps) {
  const { db, driver, signer } = deps;

  const live = async (token: string) => {
    const { key } = signer.verify(token, "upload");
    const row = await getLiveUpload(db, key);
    if (!row) throw notFound(key);
    return row;
  };
  const keyOf = (row: UploadRow) => storageKey(row.ownerId, row.fileId);

  /** Joins the parts into the file and checks it as a confirm does; a second call after success answers the same. */
  const complete = async (row: UploadRow, sha256?: string): Promise<CompletedUpload> => {
    if (row.status === "completed") return answer(await getFileRow(db, row.fileId));
    if (row.status === "failed") throw new AppError("INVALID_STATE", "this upload was refused; start a new one", { upload_id: row.id });
    const parts = await listParts(db, row.id);
    const have = new Set(parts.map((p) => p.partIndex));
    const missing = Array.from({ length: row.chunkCount }, (_, i) => i).filter((i) => !have.has(i));
    if (missing.length > 0) {
      throw new AppError("INVALID_STATE", `${missing.length} of ${row.chunkCount} chunks are missing`, { upload_id: row.id, missing: missing.slice(0, 1000) });
    }
    const expected = (sha256 ?? row.sha256)?.toLowerCase();
    if (sha256 && row.sha256 && sha256.toLowerCase() !== row.sha256) {
      throw new AppError("CHECKSUM_MISMATCH", "the sha256 given differs from the one given at init", { upload_id: row.id });
    }
    const claimed = await moveUpload(db, row.id, "open", "completing");
    if (!claimed) throw new AppError("INVALID_STATE", "this upload is being completed already", { upload_id: row.id });
    const key = keyOf(row);
    try {
      await driver.completeMultipart(
        key,
        row.multipartId,
        parts.map((p) => ({ partNumber: p.partNumber, etag: p.etag })),
      );
    } catch (err) {
      await moveUpload(db, row.id, "completing", "open");
      throw err;
    }
    const file = await getFileRow(db, row.fileId);
    if (!file) throw notFound(row.id);
    try {
      if (expected) {
        const hash = createHash("sha256");
        await pipeline(await driver.openStream(key), hash);
        const actual = hash.digest("hex");
        if (actual !== expected) {
          await markRejected(db, file.id);
          await driver.delete(key);
          throw new AppError("CHECKSUM_MISMATCH", "the file's sha256 differs from the one given", { expected, actual });
        }
      }
      const ready = await deps.finalise(file, row.totalSize);
      await moveUpload(db, row.id, "completing", "completed");
      return answer(await getFileRow(db, file.id), ready);
    } catch (err) {
      // finalise refuses by marking the file rejected and deleting its bytes; anything else leaves them for the sweeper.
      await moveUpload(db, row.id, "completing", "failed");
      throw err;
    }
  };

  const answer = async (file: FileRow | undefined, object?: FileObject): Promise<CompletedUpload> => {
    if (file?.status !== "ready") throw new AppError("INVALID_STATE", "the upload's file is not ready");
    return { file_id: file.id, filename: file.filename, file_size: file.size, file_url: await deps.downloadUrl(file), file: object ?? toFileObject(file) };
  };

  return {
    /** `PUT /storage/uploads/:token/chunks/:index`: one chunk, streamed into its part; exactly its size, and its sha256 when given. */
    chunk: async (token: string, index: number, body: Readable, sha256?: string) => {
      const row = await live(token);
      if (row.protocol !== "chunked") throw new AppError("INVALID_STATE", "this is a tus upload");
      if (row.status !== "open") throw new AppError("INVALID_STATE", `this upload is ${row.status}`, { upload_id: row.id, status: row.status });
      if (!Number.isInteger(index) || index < 0 || index >= row.chunkCount) {
        throw new AppError("INVALID_INPUT", `chunk_index must be 0 to ${row.chunkCount - 1}`, { fields: [{ path: "chunk_index", message: "out of range" }] });
      }
      const size = index === row.chunkCount - 1 ? row.totalSize - row.chunkSize * (row.chunkCount - 1) : row.chunkSize;
      const partNumber = partNumberFor(index, await getPart(db, row.id, index));
      const hash = createHash("sha256");
      const tap = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      let etag: string;
      try {
        etag = await driver.putPart(keyOf(row), row.multipartId, partNumber, pipeStreams(body, tap, () => {}), size);
      } catch (err) {
        if (err instanceof AppError && err.code === "INVALID_INPUT") {
          throw new AppError("INVALID_INPUT", `chunk ${index} must be ${size} bytes${index === row.chunkCount - 1 ? " (the last chunk: the rest of the file)" : " (chunk_size)"}`, {
            chunk_index: index,
            expected_size: size,
          });
        }
        throw err;
      }
      const actual = hash.digest("hex");
      // Unrecorded, the part is never used: complete joins the recorded ones, and the next send of this index overwrites it.
      if (sha256 && actual !== sha256.toLowerCase()) {
        throw new AppError("CHECKSUM_MISMATCH", `chunk ${index}'s sha256 differs from the checksum given; it was not kept`, { chunk_index: index, expected: sha256.toLowerCase(), actual });
      }
      const received = await recordPart(db, { uploadId: row.id, partIndex: index, partNumber, size, etag });
      if (received === undefined) throw new AppError("INVALID_STATE", "this upload was completed or expired meanwhile", { upload_id: row.id });
      return { upload_id: row.id, chunk_index: index, chunks_received: received, chunks_total: row.chunkCount };
    },

    /** `POST /storage/uploads/:token/complete`. */
    complete: async (token: string, sha256?: string) => complete(await live(token), sha256),

    /**
     * `PATCH /storage/uploads/:token/tus`: bytes from `offset` on, cut into parts as they come (one part in memory);
     * what short of a part remains is kept as the tail object, so a PATCH cut mid-body keeps what arrived. With
     * a checksum, nothing of the PATCH counts unless all of it arrived and matches (tus checksum extension).
     */
    patch: async (token: string, offset: number, body: Readable, checksum?: { algorithm: "sha256" | "sha1"; digest: string }) => {
      const { key: uploadId } = signer.verify(token, "upload");
      const row = await lockUpload(db, uploadId, lockLeaseMs);
      if (!row) {
        const now = await getLiveUpload(db, uploadId);
        body.resume();
        if (!now) throw notFound(uploadId);
        if (now.status !== "open") throw new AppError("INVALID_STATE", `this upload is ${now.status}`, { upload_id: uploadId, status: now.status });
        throw new AppError("CONFLICT", "another PATCH of this upload is under way", { upload_id: uploadId, locked: true });
      }
      if (row.expiresAt <= new Date()) {
        await unlockUpload(db, row.id);
        throw notFound(uploadId);
      }
      if (offset !== row.offset) {
        await unlockUpload(db, row.id);
        throw new AppError("CONFLICT", `Upload-Offset must be ${row.offset}`, { offset: row.offset });
      }
      const key = keyOf(row);
      const hash = checksum ? createHash(checksum.algorithm) : undefined;
      const parts: PartRow[] = [];
      let buffered: Buffer[] = row.tailSize > 0 && row.tailKey ? [await driver.readHead(row.tailKey, row.tailSize)] : [];
      let bufferedBytes = buffered.reduce((n, b) => n + b.length, 0);
      let stored = row.offset - bufferedBytes;
      let received = 0;
      let cut: unknown;
      const flushPart = async (bytes: Buffer) => {
        const index = stored / row.chunkSize;
        const partNumber = 2 * index + 1;
        const etag = await driver.putPart(key, row.multipartId, partNumber, Readable.from([bytes]), bytes.length);
        parts.push({ uploadId: row.id, partIndex: index, partNumber, size: bytes.length, etag });
        stored += bytes.length;
        await renewLock(db, row.id, lockLeaseMs);
      };
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          received += chunk.length;
          if (row.offset + received > row.totalSize) throw new AppError("PAYLOAD_TOO_LARGE", "more bytes than Upload-Length", { upload_length: row.totalSize });
          hash?.update(chunk);
          buffered.push(chunk);
          bufferedBytes += chunk.length;
          while (bufferedBytes >= row.chunkSize) {
            const all = Buffer.concat(buffered);
            await flushPart(all.subarray(0, row.chunkSize));
            buffered = [all.subarray(row.chunkSize)];
            bufferedBytes = buffered[0]!.length;
          }
        }
      } catch (err) {
        cut = err;
      }
      try {
        if (checksum && (cut || hash!.digest("base64") !== checksum.digest)) {
          await unlockUpload(db, row.id);
          if (cut) throw cut;
          throw new AppError("CHECKSUM_MISMATCH", "the body's checksum differs from Upload-Checksum; nothing of it was kept", { offset: row.offset });
        }
        if (cut instanceof AppError && cut.code === "PAYLOAD_TOO_LARGE") {
          await unlockUpload(db, row.id);
          throw cut;
        }
        const offsetNow = stored + bufferedBytes;
        let tailKey: string | null = null;
        if (offsetNow === row.totalSize && bufferedBytes > 0) await flushPart(Buffer.concat(buffered));
        else if (bufferedBytes > 0) {
          tailKey = `uploads/${row.id}/tail-${randomUUID()}`;
          await driver.putStream(tailKey, Readable.from([Buffer.concat(buffered)]), { maxBytes: row.chunkSize });
        }
        await commitPatch(db, row.id, parts, { offset: offsetNow, tailKey, tailSize: tailKey ? bufferedBytes : 0 });
        if (row.tailKey && row.tailKey !== tailKey) await driver.delete(row.tailKey).catch(() => {});
        if (cut) throw cut;
        if (offsetNow === row.totalSize) {
          const done = await complete({ ...row, offset: offsetNow, tailKey: null, tailSize: 0 });
          return { offset: offsetNow, file: done.file };
        }
        return { offset: offsetNow };
      } catch (err) {
        await unlockUpload(db, row.id).catch(() => {});
        throw err;
      }
    },
  };
}

/** Drops an unfinished upload's bytes: the driver's parts, a tus tail, and the file it was to become (unless that is ready). */
async function dropUpload(deps: Pick<ResumableDeps, "db" | "driver">, row: UploadRow, file: FileRow | undefined | null): Promise<void> {
  const key = storageKey(row.ownerId, row.fileId);
  await deps.driver.abortMultipart(key, row.multipartId);
  if (row.tailKey) await deps.driver.delete(row.tailKey);
  if (file && file.status !== "ready") {
    await deps.driver.delete(key);
    await deleteFileRow(deps.db, file.id);
  }
}

/**
 * Deletes what abandoned uploads left: resumable uploads past their expiry (their parts, S3's multipart
 * uploads aborted, tails, unfinished files) and signed-URL tickets never confirmed in as long. Every replica
 * may run it: each step is idempotent, and a row goes only after its bytes.
 */
export async function sweepUploads(deps: Pick<ResumableDeps, "db" | "driver" | "uploadExpirySec">, now = new Date()): Promise<{ uploads: number; tickets: number }> {
  const batch = 100;
  let swept = 0;
  for (;;) {
    const expired = await expiredUploads(deps.db, now, batch);
    for (const { upload, file } of expired) {
      if (upload.status !== "completed") await dropUpload(deps, upload, file);
      await deleteUploadRow(deps.db, upload.id);
    }
    swept += expired.length;
    if (expired.length < batch) break;
  }
  let tickets = 0;
  for (;;) {
    const stale = await staleTickets(deps.db, new Date(now.getTime() - deps.uploadExpirySec * 1000), batch);
    for (const file of stale) {
      await deps.driver.delete(file.storageKey);
      await deleteFileRow(deps.db, file.id);
    }
    tickets += stale.length;
    if (stale.length < batch) break;
  }
  return { uploads: swept, tickets };
}

function callerOf(ctx: RpcContext): Caller {
  if (!ctx.caller) throw new AppError("UNAUTHORIZED", "this call needs a signed-in caller");
  return ctx.caller;
}
