import { CutroomError, CutroomNetworkError, errorFromResponse } from "./errors.ts";
import type { TokenPair } from "./types.ts";

/** What a WebSocket constructor must offer: the browser's, or the `ws` package's in Node 20. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;
export interface WebSocketLike {
  readonly readyState: number;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: "error", listener: (event: unknown) => void): void;
}

export interface Tokens {
  accessToken: string;
  refreshToken: string;
}

export interface CutroomOptions {
  /** Where the API listens, e.g. `http://localhost:8000` (a trailing `/api/v1` is accepted). */
  baseUrl: string;
  accessToken?: string;
  refreshToken?: string;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** For live events: defaults to `globalThis.WebSocket`; in Node 20 pass `WebSocket` from the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Called whenever the tokens change (login, each refresh) and with null when the session ends, so an app can persist them. */
  onTokens?: (tokens: Tokens | null) => void;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  body?: RequestInit["body"];
  headers?: Record<string, string>;
  /** false: send no token and never refresh (sign-in calls). */
  auth?: boolean;
  signal?: AbortSignal;
  /** true: `path` is from the origin (`/health`), not under /api/v1. */
  root?: boolean;
  /** Statuses besides 2xx whose body is the answer (GET /health answers 503 with the report). */
  okStatuses?: number[];
}

/**
 * The HTTP plumbing shared by every resource: the base URL, the tokens, and the refresh on 401.
 * One refresh at a time: calls that see 401 while a refresh runs wait for it rather than start
 * their own, since a refresh token used twice revokes its whole family (reuse detection).
 */
export class Transport {
  readonly apiUrl: string;
  readonly origin: string;
  readonly fetch: typeof fetch;
  readonly WebSocket: WebSocketConstructor | undefined;
  accessToken: string | undefined;
  refreshToken: string | undefined;
  private readonly onTokens: CutroomOptions["onTokens"];
  private refreshing: Promise<void> | undefined;

  constructor(opts: CutroomOptions) {
    this.origin = opts.baseUrl.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
    this.apiUrl = `${this.origin}/api/v1`;
    // Called unbound: a browser's fetch invoked as a method of another object throws "Illegal invocation".
    const fetchImpl = opts.fetch ?? globalThis.fetch;
    this.fetch = (input, init) => fetchImpl(input, init);
    this.WebSocket = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.accessToken = opts.accessToken;
    this.refreshToken = opts.refreshToken;
    this.onTokens = opts.onTokens;
  }

  setTokens(pair: TokenPair | null) {
    this.accessToken = pair?.access_token;
    this.refreshToken = pair?.refresh_token;
    this.onTokens?.(pair ? { accessToken: pair.access_token, refreshToken: pair.refresh_token } : null);
  }

  /** A JSON call under /api/v1; its parsed answer (undefined for 204). Throws CutroomError or CutroomNetworkError. */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** A call under /api/v1 that answered 2xx (the body unread); a 401 refreshes the tokens once and retries. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const auth = opts.auth ?? true;
    const sent = auth ? this.accessToken : undefined;
    let res = await this.send(method, path, opts, sent);
    if (res.status === 401 && auth && this.refreshToken) {
      await res.body?.cancel().catch(() => {});
      await this.refreshAfter(sent);
      res = await this.send(method, path, opts, this.accessToken);
    }
    if (!res.ok && !opts.okStatuses?.includes(res.status)) throw await errorFromResponse(res);
    return res;
  }

  /**
   * Gets new tokens because `rejected` was refused: nothing to do when they changed since it was
   * sent (another call refreshed already), else joins the refresh in flight or starts the one.
   */
  async refreshAfter(rejected: string | undefined): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (this.accessToken !== rejected) return;
    this.refreshing = this.refresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Trades the refresh token for a new pair. A refused refresh ends the session (onTokens(null)). */
  private async refresh(): Promise<void> {
    const refreshToken = this.refreshToken;
    if (!refreshToken) throw new CutroomError({ status: 401, code: "UNAUTHORIZED", message: "no refresh token to renew the session with" });
    const res = await this.send("POST", "/auth/refresh", { json: { refresh_token: refreshToken } }, undefined);
    if (!res.ok) {
      const err = await errorFromResponse(res);
      if (err.status === 401) this.setTokens(null);
      throw err;
    }
    this.setTokens((await res.json()) as TokenPair);
  }

  url(path: string, query?: RequestOptions["query"], root = false): string {
    const url = new URL((root ? this.origin : this.apiUrl) + path);
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    return url.toString();
  }

  private async send(method: string, path: string, opts: RequestOptions, token: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    let body = opts.body;
    if (opts.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    return this.fetchOrThrow(this.url(path, opts.query, opts.root), { method, headers, body, signal: opts.signal });
  }

  /** fetch, with a failure to connect as CutroomNetworkError (an abort stays the caller's AbortError). */
  async fetchOrThrow(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetch(url, init);
    } catch (err) {
      if (init.signal?.aborted) throw err;
      throw new CutroomNetworkError(`${init.method ?? "GET"} ${url.split("?")[0]} failed: ${(err as Error)?.message ?? err}`, { cause: err });
    }
  }
}

/** A v4 UUID for Idempotency-Key: randomUUID exists only in secure contexts (https, localhost) of a browser. */
export function newIdempotencyKey(): string {
  if (typeof globalThis.crypto.randomUUID === "function") return globalThis.crypto.randomUUID();
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
