import { randomUUID } from "node:crypto";
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { fileTypeFromBuffer } from "file-type";
import { AppError, kindOf, type Caller, type FileImport, type FileObject } from "@cutroom/contracts";
import { and, eq, sqlTag as sql, type Db } from "@cutroom/db";
import { files, imports } from "@cutroom/db/storage";
import type { RpcContext, RpcHandlers } from "@cutroom/runtime";
import type { StorageDriver } from "./drivers/driver.ts";
import { claimIngest, getOwnedFile, insertPendingFile, markRejected, toFileObject, type FileRow } from "./files.ts";
import { checkQuota } from "./quota.ts";

export interface ImportOptions {
  /**
   * Lets imports reach private, loopback and link-local addresses: for tests only (FILES_IMPORT_ALLOW_PRIVATE).
   * A function decides per address and port, so a test can open one door and keep the default everywhere else.
   */
  allowPrivate: boolean | ((address: string, port: number) => boolean);
  /** The whole import, connect to last byte, in ms. */
  timeoutMs: number;
  maxRedirects: number;
}

export const defaultImportOptions: ImportOptions = { allowPrivate: false, timeoutMs: 10 * 60_000, maxRedirects: 5 };

export interface ImportDeps {
  db: Db;
  driver: StorageDriver;
  options: ImportOptions;
  /** The checks of an upload (size, real type, measurable media), then ready; rejects and deletes otherwise. */
  finalise: (row: FileRow, size: number) => Promise<FileObject>;
}

type ImportRow = typeof imports.$inferSelect;
type StoredError = NonNullable<ImportRow["error"]>;

/** Enough leading bytes for file-type to recognise every format it knows. */
const sniffBytes = 64 * 1024;
/** A running import past its deadline by this much was cut off (the process stopped): it is reported failed. */
const interruptedGraceMs = 60_000;

/** POST /files/import and its status: a URL fetched into storage in the background, job-style. */
export function createImportHandlers(deps: ImportDeps): Pick<RpcHandlers<"storage">, "startImport" | "getImport"> {
  const { db } = deps;
  return {
    startImport: async ({ url, filename, project_id, max_bytes }, ctx) => {
      const caller = callerOf(ctx);
      const target = parseImportUrl(url);
      // Refused at once where the answer is known without fetching; the fetch checks every address again.
      await checkHost(target, deps.options);
      const file = await insertPendingFile(db, {
        id: randomUUID(),
        ownerId: caller.user_id,
        projectId: project_id,
        folder: "input",
        // Without a name given, the one the server gives (its final URL, content-disposition) replaces this once fetched.
        filename: filename ?? filenameOf(target),
        // The bytes decide what it is (storedContentType): servers' content types are often wrong.
        contentType: "application/octet-stream",
      });
      // Claimed as an ingest is, so a confirm of this file id waits for the fetch instead of racing it.
      const claimed = (await claimIngest(db, file.id))!;
      const [row] = await db
        .insert(imports)
        .values({ id: randomUUID(), ownerId: caller.user_id, fileId: file.id, url: target.href, deadlineAt: new Date(Date.now() + deps.options.timeoutMs) })
        .returning();
      void runImport(deps, row!, claimed, target, max_bytes, filename === undefined, caller);
      return toFileImport(row!);
    },

    getImport: async ({ import_id }, ctx) => {
      const owner = callerOf(ctx).user_id;
      let [row] = await db
        .select()
        .from(imports)
        .where(and(eq(imports.id, import_id), eq(imports.ownerId, owner)));
      if (!row) throw new AppError("NOT_FOUND", "import not found", { import_id });
      if (row.status === "running" && row.deadlineAt.getTime() + interruptedGraceMs < Date.now()) {
        row = (await finishImport(db, row.id, importError(new AppError("IMPORT_FETCH_FAILED", "the import was cut off (storage restarted); start it again", { reason: "interrupted" })))) ?? row;
        await markRejected(db, row.fileId);
      }
      const file = row.status === "succeeded" ? await getOwnedFile(db, owner, row.fileId) : undefined;
      return toFileImport(row, file);
    },
  };
}

/** The fetch, the store and the checks; whatever happens ends in the row as succeeded or failed with a reason. */
async function runImport(deps: ImportDeps, row: ImportRow, claimed: FileRow, url: URL, maxBytes: number, nameFromServer: boolean, caller: Caller): Promise<void> {
  const { db, driver } = deps;
  const signal = AbortSignal.timeout(deps.options.timeoutMs);
  let file = claimed;
  try {
    const { res, url: finalUrl } = await fetchFollowing(url, deps.options, signal);
    if (nameFromServer) {
      const name = dispositionFilename(res.headers["content-disposition"]) ?? filenameOf(finalUrl);
      if (name !== file.filename) {
        const [renamed] = await db.update(files).set({ filename: name }).where(eq(files.id, file.id)).returning();
        if (renamed) file = renamed;
      }
    }
    const declared = Number(res.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxBytes) {
      res.destroy();
      throw new AppError("PAYLOAD_TOO_LARGE", `the file is larger than your limit of ${maxBytes} bytes`, { size: declared, max_bytes: maxBytes });
    }
    // The storage quota (ADR 031) with the announced length, and again with what arrived.
    if (Number.isFinite(declared)) {
      try {
        await checkQuota(db, caller, declared, { except: file.id });
      } catch (err) {
        res.destroy();
        throw err;
      }
    }
    // Streamed into the driver, counted as it goes (no content-length, or a lying one, still stops at the limit).
    const size = await driver.putStream(file.storageKey, res, { maxBytes }).catch((err: unknown) => {
      throw signal.aborted ? timedOut(deps.options.timeoutMs) : err;
    });
    await checkQuota(db, caller, size, { except: file.id });
    const detected = (await fileTypeFromBuffer(await driver.readHead(file.storageKey, sniffBytes)))?.mime;
    if (!detected || kindOf(detected) === "other") {
      throw new AppError("UNSUPPORTED_MEDIA_TYPE", "the URL does not hold an image, video or audio file", { detected: detected ?? null });
    }
    await deps.finalise(file, size);
    await finishImport(db, row.id, null);
  } catch (err) {
    const error = importError(signal.aborted && !(err instanceof AppError) ? timedOut(deps.options.timeoutMs) : err);
    await markRejected(db, file.id).catch(() => {});
    await driver.delete(file.storageKey).catch(() => {});
    await finishImport(db, row.id, error).catch(() => {});
  }
}

async function finishImport(db: Db, id: string, error: StoredError | null): Promise<ImportRow | undefined> {
  const [row] = await db
    .update(imports)
    .set({ status: error ? "failed" : "succeeded", error, completedAt: sql`now()` })
    .where(and(eq(imports.id, id), eq(imports.status, "running")))
    .returning();
  return row;
}

function importError(err: unknown): StoredError {
  if (err instanceof AppError) return { code: err.code, message: err.message, status: err.status, ...(err.details ? { details: err.details } : {}) };
  const message = err instanceof Error ? err.message : String(err);
  return { code: "IMPORT_FETCH_FAILED", message: `the download failed: ${message}`, status: 502, details: { reason: "connection" } };
}

const timedOut = (ms: number) => new AppError("IMPORT_FETCH_FAILED", `the download took longer than ${ms / 1000} s`, { reason: "timeout" });

function toFileImport(row: ImportRow, file?: FileRow): FileImport {
  return {
    id: row.id,
    status: row.status,
    url: row.url,
    file_id: row.fileId,
    error: row.error ?? null,
    ...(file ? { file: toFileObject(file) } : {}),
    created_at: row.createdAt.toISOString(),
    completed_at: row.completedAt?.toISOString() ?? null,
  };
}

function parseImportUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AppError("INVALID_INPUT", "url is not a URL", { fields: [{ path: "url", message: "must be a URL" }] });
  }
  checkScheme(url);
  return url;
}

function checkScheme(url: URL): void {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new AppError("IMPORT_URL_REFUSED", `only http and https URLs can be imported, not ${url.protocol}`, { reason: "scheme", url: url.href });
  }
  // Credentials in a URL would be sent on to wherever it redirects.
  if (url.username || url.password) throw new AppError("IMPORT_URL_REFUSED", "a URL with credentials cannot be imported", { reason: "credentials" });
}

const portOf = (url: URL) => Number(url.port || (url.protocol === "https:" ? 443 : 80));
const hostOf = (url: URL) => url.hostname.replace(/^\[|\]$/g, "");

/** The host's addresses, every one of them public (unless allowed); IMPORT_URL_REFUSED otherwise. */
async function checkHost(url: URL, options: ImportOptions): Promise<void> {
  const host = hostOf(url);
  const addresses = isIP(host) ? [host] : (await resolve(host)).map((a) => a.address);
  for (const address of addresses) checkAddress(address, portOf(url), options);
}

function resolve(host: string): Promise<LookupAddress[]> {
  return new Promise((done, fail) =>
    dnsLookup(host, { all: true }, (err, addresses) =>
      // The client's URL names no host we can find: its mistake to fix (422), not a failure of ours.
      err ? fail(new AppError("IMPORT_URL_REFUSED", `cannot resolve ${host}: ${err.code ?? err.message}`, { reason: "dns", host })) : done(addresses),
    ),
  );
}

function checkAddress(address: string, port: number, { allowPrivate }: ImportOptions): void {
  const allowed = typeof allowPrivate === "function" ? allowPrivate(address, port) : allowPrivate;
  if (!allowed && !isPublicAddress(address)) {
    throw new AppError("IMPORT_URL_REFUSED", `the URL leads to a private address (${address}), which cannot be imported`, { reason: "private_address", address });
  }
}

/** Every range that is not the public internet: private, loopback, link-local, shared, documentation, multicast, reserved (RFC 6890). */
const nonPublic = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  nonPublic.addSubnet(net, prefix, "ipv4");
}
// IPv6: only global unicast (2000::/3) is public, less its special blocks; 6to4 and Teredo embed addresses we cannot vouch for.
for (const [net, prefix] of [
  ["2001::", 23],
  ["2001:db8::", 32],
  ["2002::", 16],
] as const) {
  nonPublic.addSubnet(net, prefix, "ipv6");
}
const globalUnicast = new BlockList();
globalUnicast.addSubnet("2000::", 3, "ipv6");

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !nonPublic.check(address, "ipv4");
  if (family !== 6) return false;
  // An IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address reaches that IPv4 address.
  const embedded = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (embedded) return isPublicAddress(embedded);
  return globalUnicast.check(address, "ipv6") && !nonPublic.check(address, "ipv6");
}

/**
 * The lookup a request connects with: the addresses it will actually use are checked, so a name that
 * resolved to a public address for the first check and to a private one now (DNS rebinding) is refused.
 */
function guardedLookup(port: number, options: ImportOptions): LookupFunction {
  return (hostname, opts, callback) => {
    dnsLookup(hostname, { ...opts, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, "", 4);
      try {
        for (const a of addresses) checkAddress(a.address, port, options);
      } catch (refused) {
        return callback(refused as NodeJS.ErrnoException, "", 4);
      }
      if (opts.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

const redirects = new Set([301, 302, 303, 307, 308]);

/** GET `url`, following at most `maxRedirects` redirects, each hop's scheme and addresses checked. */
async function fetchFollowing(start: URL, options: ImportOptions, signal: AbortSignal): Promise<{ res: IncomingMessage; url: URL }> {
  let url = start;
  for (let hop = 0; ; hop++) {
    checkScheme(url);
    const host = hostOf(url);
    if (isIP(host)) checkAddress(host, portOf(url), options);
    const res = await get(url, options, signal);
    const location = res.headers.location;
    if (!redirects.has(res.statusCode ?? 0) || !location) {
      if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) return { res, url };
      res.destroy();
      throw new AppError("IMPORT_FETCH_FAILED", `the server answered ${res.statusCode}`, { reason: "http_status", status: res.statusCode, url: url.href });
    }
    res.resume();
    if (hop >= options.maxRedirects) throw new AppError("IMPORT_FETCH_FAILED", `more than ${options.maxRedirects} redirects`, { reason: "too_many_redirects" });
    try {
      url = new URL(location, url);
    } catch {
      throw new AppError("IMPORT_FETCH_FAILED", "the server redirected to something that is not a URL", { reason: "bad_redirect" });
    }
  }
}

function get(url: URL, options: ImportOptions, signal: AbortSignal): Promise<IncomingMessage> {
  const port = portOf(url);
  return new Promise((resolveRes, reject) => {
    const req = (url.protocol === "https:" ? httpsRequest : httpRequest)(url, {
      method: "GET",
      // A fresh connection per hop: a kept-alive socket was checked for another host.
      agent: false,
      lookup: guardedLookup(port, options),
      signal,
      headers: { accept: "image/*, video/*, audio/*, */*;q=0.5", "user-agent": "cutroom-import" },
    });
    // Whatever way the socket was opened, the address it reached is checked before a byte is sent.
    req.on("socket", (socket) =>
      socket.once("connect", () => {
        try {
          if (socket.remoteAddress) checkAddress(socket.remoteAddress, port, options);
        } catch (refused) {
          req.destroy(refused as Error);
        }
      }),
    );
    req.on("response", resolveRes);
    req.on("error", (err) => reject(signal.aborted && !(err instanceof AppError) ? timedOut(options.timeoutMs) : err));
    req.end();
  });
}

function filenameOf(url: URL): string {
  return cleanName(decoded(url.pathname.split("/").filter(Boolean).pop() ?? "")) ?? "import";
}

/** content-disposition's filename* (RFC 6266, UTF-8) or filename. */
function dispositionFilename(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header)?.[1];
  if (extended) return cleanName(decoded(extended.trim()));
  const plain = /filename\s*=\s*(?:"([^"]*)"|([^;]+))/i.exec(header);
  return cleanName((plain?.[1] ?? plain?.[2] ?? "").trim());
}

function decoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const cleanName = (name: string) => name.replace(/[/\\\0]/g, "_").trim().slice(0, 255) || undefined;

function callerOf(ctx: RpcContext): Caller {
  if (!ctx.caller) throw new AppError("UNAUTHORIZED", "this call needs a signed-in caller");
  return ctx.caller;
}
