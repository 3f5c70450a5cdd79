import { createHash, randomUUID } from "node:crypto";
import { pipeline, Transform, type Readable } from "node:stream";
import { fileTypeFromBuffer } from "file-type";
import { AppError, downloadUrlSeconds, kindOf, toPage, type Caller, type FileObject, type InputUrl, type MediaFacts } from "@cutroom/contracts";
import { sqlTag as sql, type Db } from "@cutroom/db";
import { runChecks, SMALL_FILE_BYTES, type RpcContext, type RpcHandlers } from "@cutroom/runtime";
import type { Audience, StorageDriver } from "./drivers/driver.ts";
import {
  claimIngest,
  claimSignedPut,
  deleteFileRow,
  fileStats,
  getFileRow,
  getOwnedFile,
  getReadyFiles,
  insertPendingFile,
  listProjectFiles,
  listReadyFiles,
  markReady,
  markRejected,
  mediaOf,
  moveFile,
  projectFileRows,
  putOutputFile,
  releaseIngest,
  storageKey,
  toFileObject,
  type FileRow,
} from "./files.ts";
import { createImportHandlers, defaultImportOptions, type ImportOptions } from "./import.ts";
import { acceptsContent, storedContentType } from "./media-check.ts";
import { createMediaProbe, imageHeadBytes, UnmeasurableMedia, type MediaProbe, type ProbeSource } from "./probe.ts";
import { checkQuota, storageUsage } from "./quota.ts";
import { createResumableHandlers, type ResumableDeps } from "./resumable.ts";
import type { Signer } from "./signed-token.ts";

export interface StorageDeps {
  db: Db;
  driver: StorageDriver;
  /** Signs ingest tokens (the fs driver signs its URLs with the same secret). */
  signer: Signer;
  /** Where the gateway reaches our data plane, e.g. http://127.0.0.1:8001. */
  internalUrl: string;
  /** Measures media files as they become ready (default: image headers and ffprobe, 15 s at most). */
  probe?: MediaProbe;
  /** POST /files/import: addresses allowed, timeout, redirects (default: public addresses only, 10 min, 5). */
  imports?: ImportOptions;
  /** Resumable uploads and unconfirmed tickets are swept this long after they start (UPLOAD_EXPIRY_S; default 24 h). */
  uploadExpirySec?: number;
}

/** Resumable uploads (chunked, tus: ADR 030) with this service's checks of a finished file. */
export function resumableDeps(deps: StorageDeps): ResumableDeps {
  return {
    ...deps,
    uploadExpirySec: deps.uploadExpirySec ?? 24 * 60 * 60,
    finalise: (row, size) => finaliseUpload(deps, row, size),
    downloadUrl: async (row) => (await signedDownload(deps.driver, row)).url,
  };
}

/** Signed URLs and tickets live this long. */
const urlTtlSec = 15 * 60;
/** A client's download URL, unless it asks for another lifetime (seed 003's default). */
const downloadTtlSec = downloadUrlSeconds.default;
/** Enough leading bytes for file-type to recognise every format it knows. */
const sniffBytes = 64 * 1024;

/** storage-service: file records in Postgres, bytes behind a driver, moved only through signed URLs. */
export function createStorageHandlers(deps: StorageDeps): RpcHandlers<"storage"> {
  const { db, driver, signer } = deps;

  const ownedFile = async (ctx: RpcContext, fileId: string) => {
    const row = await getOwnedFile(db, callerOf(ctx).user_id, fileId);
    if (!row) throw new AppError("NOT_FOUND", "file not found", { file_id: fileId });
    return row;
  };

  return {
    ...createResumableHandlers(resumableDeps(deps)),
    health: async () => runChecks("storage", { database: () => db.execute(sql`select 1`), storage: () => driver.check() }),

    createUpload: async ({ filename, content_type, size, project_id, max_bytes }, ctx) => {
      const caller = callerOf(ctx);
      if (size > max_bytes) throw new AppError("PAYLOAD_TOO_LARGE", `the file is larger than your limit of ${max_bytes} bytes`, { size, max_bytes });
      await checkQuota(db, caller, size);
      const row = await insertPendingFile(db, { id: randomUUID(), ownerId: caller.user_id, projectId: project_id, folder: "input", filename, contentType: content_type, declaredSize: size });
      return uploadTicket(driver, row, size);
    },

    confirmUpload: async ({ file_id }, ctx) => {
      const row = await ownedFile(ctx, file_id);
      // A worker's output is confirmed by the worker (confirmOutput), never by its owner.
      if (row.folder !== "input") throw new AppError("NOT_FOUND", "file not found", { file_id });
      return confirmSignedUpload(deps, row, (claimed) => finaliseUpload(deps, claimed));
    },

    createIngest: async ({ filename, content_type, project_id, max_bytes }, ctx) => {
      const caller = callerOf(ctx);
      const row = await insertPendingFile(db, { id: randomUUID(), ownerId: caller.user_id, projectId: project_id, folder: "input", filename, contentType: content_type });
      const token = signer.sign({ op: "ingest", key: row.id, exp: Date.now() + urlTtlSec * 1000, max: max_bytes, ct: content_type, tier: caller.tier });
      return { file_id: row.id, ingest_url: `${deps.internalUrl}/storage/ingest/${token}` };
    },

    getFile: async ({ file_id }, ctx) => toFileObject(await ownedFile(ctx, file_id)),

    usage: async (_body, ctx) => storageUsage(db, callerOf(ctx)),

    listFiles: async (q, ctx) => {
      const { rows, total } = await listReadyFiles(db, callerOf(ctx).user_id, q);
      const data = await Promise.all(
        rows.map(async (row) => {
          if (q.include !== "url") return toFileObject(row);
          const { url, expires_at } = await signedDownload(driver, row, "client", downloadTtlSec);
          return { ...toFileObject(row), download: { url, expires_at } };
        }),
      );
      return toPage(data, total, q);
    },

    downloadUrl: async ({ file_id, expires_in }, ctx) => {
      const row = await ownedFile(ctx, file_id);
      if (row.status !== "ready") throw new AppError("INVALID_STATE", "the file is not uploaded yet", { file_id, status: row.status });
      return signedDownload(driver, row, "client", expires_in ?? downloadTtlSec);
    },

    ...createImportHandlers({ db, driver, options: deps.imports ?? defaultImportOptions, finalise: (row, size) => finaliseUpload(deps, row, size) }),

    deleteFile: async ({ file_id }, ctx) => {
      const row = await ownedFile(ctx, file_id);
      // Bytes first: if that fails the record stays, and the call can be retried.
      await driver.delete(row.storageKey);
      await deleteFileRow(db, row.id);
      return { deleted: true as const };
    },

    projectFiles: async (q, ctx) => {
      const { rows, total } = await listProjectFiles(db, callerOf(ctx).user_id, q);
      return toPage(rows.map(toFileObject), total, q);
    },

    deleteProjectFiles: async ({ project_id }, ctx) => {
      const rows = await projectFileRows(db, callerOf(ctx).user_id, project_id);
      // As deleteFile, bytes before each record: a failure leaves the rest to a retry of the whole call.
      for (const row of rows) {
        await driver.delete(row.storageKey);
        await deleteFileRow(db, row.id);
      }
      return { deleted: rows.length };
    },

    stats: async (_body, ctx) => {
      if (callerOf(ctx).role !== "admin") throw new AppError("FORBIDDEN", "admins only");
      return fileStats(db);
    },

    // `public`: for a worker over HTTP (ADR 040), which reaches storage only through the public address.
    inputUrl: async ({ owner_id, file_id, public: outside }) => {
      const row = await getOwnedFile(db, owner_id, file_id);
      if (row?.status !== "ready") throw new AppError("NOT_FOUND", "input file not found", { file_id });
      return inputUrlOf(driver, row, outside);
    },

    // One call for a claimed job (ADR 033): a missing or unready input is left out, and the worker's own inputUrl then says why.
    jobAccess: async ({ owner_id, job_id, project_id, file_ids, public: outside }) => {
      const rows = file_ids.length === 0 ? [] : await getReadyFiles(db, owner_id, file_ids);
      const inputs: Record<string, InputUrl> = {};
      for (const row of rows) inputs[row.id] = await inputUrlOf(driver, row, outside);
      // Only where our data plane receives worker uploads itself (fs); an S3 worker PUTs to S3 and confirms after.
      // A worker outside (ADR 040) cannot reach the data plane's own address: it takes output tickets.
      if (driver.name !== "fs" || outside) return { inputs, expires_at: expiresAt() };
      const token = signer.sign({ op: "output", key: owner_id, job: job_id, ...(project_id ? { prj: project_id } : {}), exp: Date.now() + urlTtlSec * 1000 });
      return { inputs, output_url: `${deps.internalUrl}/storage/output/${token}`, expires_at: expiresAt() };
    },

    createOutput: async ({ owner_id, job_id, filename, content_type, project_id, public: outside }) => {
      const row = await putOutputFile(db, {
        id: outputFileId(job_id, filename),
        ownerId: owner_id,
        jobId: job_id,
        projectId: project_id ?? null,
        filename,
        contentType: content_type,
      }, { status: "pending" });
      if (!row) throw new AppError("CONFLICT", "this output belongs to another user", { job_id });
      return uploadTicket(driver, row, undefined, outside ? "client" : "worker");
    },

    confirmOutput: async ({ owner_id, file_id, check }) => {
      const row = await getOwnedFile(db, owner_id, file_id);
      if (row?.folder !== "output") throw new AppError("NOT_FOUND", "output file not found", { file_id });
      // A model provider's bytes are checked as a user's upload is: the real type, measurable media.
      if (check) return confirmSignedUpload(deps, row, (claimed) => finaliseUpload(deps, claimed));
      return confirmSignedUpload(deps, row, async (claimed) => {
        const size = await driver.size(claimed.storageKey);
        if (size === undefined) throw new AppError("INVALID_STATE", "nothing uploaded yet", { file_id });
        // Our own output: left unmeasured rather than refused when the probe cannot read it.
        const media = await probeOf(deps)(kindOf(claimed.contentType), probeSource(driver, claimed.storageKey)).catch(() => undefined);
        return toFileObject(await markReady(db, claimed.id, size, undefined, media));
      });
    },
  };
}

/**
 * Confirm of a signed upload: the row is claimed first (so two confirms, or a confirm and a PUT, never
 * interleave), then the driver puts the bytes out of the upload URL's reach, then `finish` checks them.
 * A confirm that fails without a verdict (nothing uploaded yet, storage unreachable) gives the row back.
 */
async function confirmSignedUpload(deps: StorageDeps, row: FileRow, finish: (claimed: FileRow) => Promise<FileObject>): Promise<FileObject> {
  if (row.status === "ready") return toFileObject(row);
  if (row.status === "rejected") throw new AppError("INVALID_STATE", "this upload was rejected; start a new one", { file_id: row.id });
  const claimed = row.status === "receiving" ? undefined : await moveFile(deps.db, row.id, row.status, "receiving");
  if (!claimed) {
    const now = await getFileRow(deps.db, row.id);
    if (now?.status === "ready") return toFileObject(now);
    throw new AppError("INVALID_STATE", "the bytes are still arriving, or another confirm is checking them", { file_id: row.id });
  }
  try {
    await deps.driver.commitUpload(claimed.storageKey);
    return await finish(claimed);
  } catch (err) {
    await moveFile(deps.db, row.id, "receiving", row.status);
    throw err;
  }
}

export type SignedPutReceiver = (key: string, body: Readable, maxBytes: number) => Promise<number>;

/**
 * The fs data plane's `PUT /storage/blob/:token`: a ticket's URL stores bytes once, and only while its
 * file is pending (a conditional update claims the row, as an ingest does). A second PUT, or one after
 * confirm, is refused, so a confirmed file (perhaps a queued job's input) never changes under its owner.
 * A PUT that fails part-way keeps nothing and gives the ticket back.
 */
export function createSignedPutReceiver(deps: StorageDeps): SignedPutReceiver {
  return async (key, body, maxBytes) => {
    const row = await claimSignedPut(deps.db, key);
    if (!row) throw new AppError("INVALID_STATE", "this upload URL was used already, or its file is confirmed or rejected; start a new upload");
    try {
      const size = await deps.driver.putStream(key, body, { maxBytes });
      await moveFile(deps.db, row.id, "receiving", "uploaded");
      return size;
    } catch (err) {
      await releaseIngest(deps.db, row.id);
      throw err;
    }
  };
}

export type OutputReceiver = (token: string, filename: string, contentType: string, body: Readable, length?: number) => Promise<FileObject>;

/**
 * The data plane's `PUT /storage/output/:token?filename=<name>` (ADR 033): a job's output stored and
 * recorded in one request, what createOutput, the signed PUT and confirmOutput did in three. The bytes
 * go first, under the key the (job, filename) row always has; they are measured as confirmOutput
 * measures them; then one statement records the row ready (ADR 061), and the answer is the ready file.
 * A PUT that fails keeps nothing and leaves the row as it was. A body whose declared `length` is at
 * most SMALL_FILE_BYTES is taken whole and stored in one write (ADR 049).
 */
export function createOutputReceiver(deps: StorageDeps): OutputReceiver {
  return async (token, filename, contentType, body, length) => {
    const claims = deps.signer.verify(token, "output");
    if (!claims.job) throw new AppError("FORBIDDEN", "this link names no job");
    const output = { id: outputFileId(claims.job, filename), ownerId: claims.key, jobId: claims.job, projectId: claims.prj ?? null, filename, contentType };
    const key = storageKey(output.ownerId, output.id);
    const kind = kindOf(contentType);
    const source = probeSource(deps.driver, key);
    let size: number;
    let head: ((n: number) => Buffer | undefined) | undefined;
    if (length !== undefined && length <= SMALL_FILE_BYTES) {
      const bytes = Buffer.concat(await body.toArray());
      await deps.driver.putBytes(key, bytes, { contentType });
      size = bytes.length;
      head = (n) => bytes.subarray(0, n);
    } else {
      // An image is measured from its header: kept as it streams in, rather than read back from the driver.
      const kept = kind === "image" ? keepHead(body, imageHeadBytes) : undefined;
      size = await deps.driver.putStream(key, kept?.body ?? body, { maxBytes: Number.POSITIVE_INFINITY, contentType });
      head = kept?.head;
    }
    // Our own output: left unmeasured rather than refused when the probe cannot read it (as confirmOutput).
    const media = await probeOf(deps)(kind, head ? { ...source, head: async (n) => head(n) ?? source.head(n) } : source).catch(() => undefined);
    const row = await putOutputFile(deps.db, output, { status: "ready", size, media });
    if (!row) {
      // The key is under this owner's name: another user's bytes were never touched, and ours go.
      await deps.driver.delete(key).catch(() => {});
      throw new AppError("CONFLICT", "this output belongs to another user", { job_id: claims.job });
    }
    return toFileObject(row);
  };
}

/**
 * The body passed through, its first `max` bytes kept on the way. `head(n)` is undefined when fewer than
 * `n` bytes were kept of a longer body; ask it once the body has ended.
 */
function keepHead(body: Readable, max: number): { body: Readable; head: (n: number) => Buffer | undefined } {
  const chunks: Buffer[] = [];
  let kept = 0;
  let total = 0;
  const through = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      if (kept < max) {
        const part = chunk.subarray(0, max - kept);
        chunks.push(part);
        kept += part.length;
      }
      done(null, chunk);
    },
  });
  // Either side failing fails both, as when the driver read the body itself.
  pipeline(body, through, () => {});
  return { body: through, head: (n) => (kept >= n || kept === total ? Buffer.concat(chunks, kept).subarray(0, n) : undefined) };
}

export type IngestReceiver = (token: string, body: Readable, contentLength?: number) => Promise<FileObject>;

/**
 * The data plane's `PUT /storage/ingest/:token`: the gateway streams a multipart upload of unknown
 * length here; it goes straight into the driver and is then confirmed like any upload.
 */
export function createIngestReceiver(deps: StorageDeps): IngestReceiver {
  return async (token, body, contentLength) => {
    const claims = deps.signer.verify(token, "ingest");
    const row = await claimIngest(deps.db, claims.key);
    if (!row) {
      const existing = await getFileRow(deps.db, claims.key);
      if (!existing) throw new AppError("NOT_FOUND", "file not found");
      throw new AppError("INVALID_STATE", "this upload is already finished or under way", { file_id: existing.id, status: existing.status });
    }
    const maxBytes = claims.max ?? Number.POSITIVE_INFINITY;
    // The size is known only from the body: the quota is checked with its length, and again with what arrived (ADR 031).
    const owner: Caller | undefined = claims.tier ? { user_id: row.ownerId, role: "user", tier: claims.tier } : undefined;
    let size: number;
    try {
      if (contentLength !== undefined && contentLength > maxBytes) {
        throw new AppError("PAYLOAD_TOO_LARGE", `the file is larger than your limit of ${maxBytes} bytes`, { size: contentLength, max_bytes: maxBytes });
      }
      if (owner && contentLength !== undefined) await checkQuota(deps.db, owner, contentLength, { except: row.id });
      size = await deps.driver.putStream(row.storageKey, body, { maxBytes, contentType: row.contentType });
      if (owner) {
        await checkQuota(deps.db, owner, size, { except: row.id }).catch(async (err) => {
          await deps.driver.delete(row.storageKey);
          throw err;
        });
      }
    } catch (err) {
      if (err instanceof AppError && (err.code === "PAYLOAD_TOO_LARGE" || err.code === "STORAGE_QUOTA_EXCEEDED")) await markRejected(deps.db, row.id);
      else await releaseIngest(deps.db, row.id);
      throw err;
    }
    return finaliseUpload(deps, row, size);
  };
}

/**
 * Checks the stored bytes against what was declared (size, then magic bytes) and marks the file
 * ready; a file that fails is marked rejected and its bytes deleted.
 */
async function finaliseUpload(deps: StorageDeps, row: FileRow, knownSize?: number): Promise<FileObject> {
  const { db, driver } = deps;
  // An ingest knows what it wrote; asking the driver again would cost S3 a HEAD.
  const size = knownSize ?? (await driver.size(row.storageKey));
  if (size === undefined) throw new AppError("INVALID_STATE", "nothing uploaded yet", { file_id: row.id });
  const reject = async (error: AppError) => {
    await markRejected(db, row.id);
    await driver.delete(row.storageKey);
    throw error;
  };
  if (row.declaredSize !== null && size > row.declaredSize) {
    return reject(new AppError("PAYLOAD_TOO_LARGE", "more bytes arrived than were declared", { size, declared_size: row.declaredSize }));
  }
  if (row.declaredSize !== null && size < row.declaredSize) {
    return reject(new AppError("INVALID_INPUT", "fewer bytes arrived than were declared", { size, declared_size: row.declaredSize }));
  }
  const detected = (await fileTypeFromBuffer(await driver.readHead(row.storageKey, sniffBytes)))?.mime;
  if (!acceptsContent(row.contentType, detected)) {
    return reject(
      new AppError("UNSUPPORTED_MEDIA_TYPE", `the bytes are not ${row.contentType}`, { declared: row.contentType, detected: detected ?? null }),
    );
  }
  const contentType = storedContentType(row.contentType, detected);
  // Jobs size their work (limits, credits) from these facts, so a media file must be measurable to be kept.
  let media: MediaFacts | undefined;
  try {
    media = await probeOf(deps)(kindOf(contentType), probeSource(driver, row.storageKey));
  } catch (err) {
    if (!(err instanceof UnmeasurableMedia)) throw err;
    return reject(new AppError("UNSUPPORTED_MEDIA_TYPE", `the bytes are not a ${kindOf(contentType)} we can read: ${err.message}`, { declared: row.contentType, detected: detected ?? null }));
  }
  return toFileObject(await markReady(db, row.id, size, contentType, media));
}

const defaultProbe = createMediaProbe();
const probeOf = (deps: StorageDeps) => deps.probe ?? defaultProbe;
const probeSource = (driver: StorageDriver, key: string): ProbeSource => ({ head: (n) => driver.readHead(key, n), locate: () => driver.localSource(key) });

async function uploadTicket(driver: StorageDriver, row: FileRow, size?: number, audience: Audience = "client") {
  const { url, headers } = await driver.presignPut(row.storageKey, { contentType: row.contentType, size, expiresInSec: urlTtlSec, audience });
  return { file_id: row.id, upload_url: url, method: "PUT" as const, headers, expires_at: expiresAt() };
}

async function signedDownload(driver: StorageDriver, row: FileRow, audience: Audience = "client", expiresInSec = urlTtlSec) {
  const url = await driver.presignGet(row.storageKey, { expiresInSec, filename: row.filename, contentType: row.contentType, audience });
  return { url, expires_at: expiresAt(expiresInSec), expires_in: expiresInSec };
}

/**
 * A job's input as a worker gets it: a signed GET for the worker (or, outside, through the public address),
 * with what the worker checks the download against and what storage measured of it (ADR 058).
 */
async function inputUrlOf(driver: StorageDriver, row: FileRow, outside = false): Promise<InputUrl> {
  const { url, expires_at } = await signedDownload(driver, row, outside ? "client" : "worker");
  const media = mediaOf(row);
  return { url, expires_at, filename: row.filename, content_type: row.contentType, size: row.size, ...(media ? { media } : {}) };
}

const expiresAt = (seconds = urlTtlSec) => new Date(Date.now() + seconds * 1000).toISOString();

function callerOf(ctx: RpcContext): Caller {
  if (!ctx.caller) throw new AppError("UNAUTHORIZED", "this call needs a signed-in caller");
  return ctx.caller;
}

/**
 * A job's output is named by (job, filename), so a re-run writes the same file instead of a
 * second one: a UUID (version 8, RFC 9562) made of the first 16 bytes of their SHA-256.
 */
export function outputFileId(jobId: string, filename: string): string {
  const b = createHash("sha256").update(`cutroom-output\n${jobId}\n${filename}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
