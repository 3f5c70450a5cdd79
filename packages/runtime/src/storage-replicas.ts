import { request as httpRequest, type Agent, type ClientRequest, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import type { z } from "zod";

/**
 * STORAGE_INTERNAL_URL's value: one base URL, or several comma-separated (storage-service's replicas,
 * the first preferred). Trailing slashes go, so a path appends cleanly.
 */
export function urlList(value: string, ctx: z.RefinementCtx): string[] {
  const urls = value
    .split(",")
    .map((u) => u.trim().replace(/\/+$/, ""))
    .filter(Boolean);
  if (urls.length === 0) ctx.addIssue({ code: "custom", message: "needs at least one URL" });
  for (const u of urls) if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) ctx.addIssue({ code: "custom", message: `${u} is not an http(s) URL` });
  return urls;
}

/** storage-service's data planes, every one of which serves every signed URL (one secret, one fs dir or bucket). */
export interface StorageReplicas {
  /** Their base URLs, the first preferred. */
  readonly bases: readonly string[];
  /**
   * Opens a request and resolves once its connection is up, before a byte of the body is sent, so a
   * body stream that cannot be replayed is still whole. When `url` is on one of `bases` and that replica
   * refuses the connection or does not take it within the connect timeout, the same path is tried on the
   * next; a replica that failed is tried last for a while. Any answer (a 4xx too) is the answer.
   */
  connect(url: string, opts: { method: string; headers?: OutgoingHttpHeaders; agent?: Agent; signal?: AbortSignal }): Promise<ClientRequest>;
}

// Errors that mean nothing reached the replica: the request can go to another one.
const CONNECT_FAILURES = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "EHOSTDOWN", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT"]);
// Long enough to spare the next requests a timeout each, short enough to notice a replica back.
const DOWN_FOR_MS = 10_000;

export function createStorageReplicas(bases: readonly string[], { connectTimeoutMs = 2000 }: { connectTimeoutMs?: number } = {}): StorageReplicas {
  const downUntil = new Map<string, number>();

  /** [base, url] to try in turn: the URL's own replica first unless it failed lately, then the others. */
  const candidates = (url: string): Array<[string | undefined, string]> => {
    const own = bases.find((b) => url.startsWith(`${b}/`));
    if (!own) return [[undefined, url]];
    const rest = url.slice(own.length);
    const now = Date.now();
    const ordered = [own, ...bases.filter((b) => b !== own)];
    const up = ordered.filter((b) => (downUntil.get(b) ?? 0) <= now);
    return [...up, ...ordered.filter((b) => !up.includes(b))].map((b) => [b, b + rest]);
  };

  return {
    bases,
    async connect(url, opts) {
      let lastError: unknown;
      for (const [base, target] of candidates(url)) {
        try {
          const req = await open(target, opts, connectTimeoutMs);
          if (base) downUntil.delete(base);
          return req;
        } catch (err) {
          if (opts.signal?.aborted || !CONNECT_FAILURES.has((err as { code?: string }).code ?? "")) throw err;
          if (base) downUntil.set(base, Date.now() + DOWN_FOR_MS);
          lastError = err;
        }
      }
      throw lastError;
    },
  };
}

function open(url: string, opts: { method: string; headers?: OutgoingHttpHeaders; agent?: Agent; signal?: AbortSignal }, timeoutMs: number): Promise<ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, { method: opts.method, headers: opts.headers, agent: opts.agent, signal: opts.signal });
    let connected = false;
    let timer: NodeJS.Timeout | undefined;
    const fail = (err: Error) => {
      if (connected) return;
      connected = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    // Stays on: the caller listens too, but an error while nobody else does must not crash the process.
    req.on("error", fail);
    req.once("socket", (socket) => {
      const up = () => {
        if (connected) return;
        connected = true;
        clearTimeout(timer);
        resolve(req);
      };
      // A kept-alive socket is connected already.
      if (!socket.connecting) return up();
      timer = setTimeout(() => fail(Object.assign(new Error(`no connection to ${new URL(url).host} within ${timeoutMs} ms`), { code: "ETIMEDOUT" })), timeoutMs);
      socket.once("connect", up);
    });
  });
}
