import { CutroomError, CutroomNetworkError, errorFromCloseReason } from "./errors.ts";
import type { Transport, WebSocketLike } from "./transport.ts";

export interface EventStreamOptions {
  /** Yield the events after this seq: 0 (the default) replays the whole stored history first. */
  since?: number;
  signal?: AbortSignal;
  /** Reconnections in a row without an event before giving up (CutroomNetworkError). Default 8. */
  maxReconnects?: number;
}

const NORMAL = 1000;
const POLICY_VIOLATION = 1008;

type Item = { kind: "message"; data: unknown } | { kind: "close"; code: number; reason: string } | { kind: "open" };

/**
 * The events of one job or pipeline from `WS /ws/{jobs|pipelines}/{id}?since=`, in seq order, ending
 * after the terminal event (or when the server closes normally: the run ended). A dropped socket is
 * opened again with `since` set to the last seq seen, so no event is missed; any seq already seen is
 * skipped, so none is repeated. A refused token is refreshed once per refusal.
 */
export async function* followEvents<E extends { seq: number; type: string }>(
  transport: Transport,
  what: "jobs" | "pipelines",
  id: string,
  isTerminal: (e: E) => boolean,
  opts: EventStreamOptions = {},
): AsyncGenerator<E, void, undefined> {
  const WebSocketImpl = transport.WebSocket;
  if (!WebSocketImpl) throw new CutroomError({ status: 0, code: "WEBSOCKET_UNAVAILABLE", message: "no WebSocket: pass one (the ws package's in Node 20) as the WebSocket option" });
  let last = opts.since ?? 0;
  let failures = 0;
  let refreshedFor: string | undefined;
  const maxReconnects = opts.maxReconnects ?? 8;
  for (;;) {
    opts.signal?.throwIfAborted();
    const token = transport.accessToken;
    const url = `${transport.origin.replace(/^http/, "ws")}/ws/${what}/${encodeURIComponent(id)}?since=${last}`;
    // Browsers cannot set headers on a WebSocket: the token travels as the subprotocol pair ["bearer", token].
    const socket = new WebSocketImpl(url, token ? ["bearer", token] : undefined);
    const items = queue<Item>();
    socket.addEventListener("open", () => items.push({ kind: "open" }));
    socket.addEventListener("message", (event) => items.push({ kind: "message", data: event.data }));
    socket.addEventListener("close", (event) => items.push({ kind: "close", code: event.code, reason: String(event.reason ?? "") }));
    socket.addEventListener("error", () => {});
    const onAbort = () => closeQuietly(socket);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let closed: { code: number; reason: string } | undefined;
    try {
      for (;;) {
        const item = await items.next();
        if (item.kind === "open") continue;
        if (item.kind === "close") {
          closed = item;
          break;
        }
        const message = parse(item.data) as E | undefined;
        if (!message || typeof message.seq !== "number" || message.seq <= last) continue;
        last = message.seq;
        failures = 0;
        yield message;
        if (isTerminal(message)) return;
      }
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      closeQuietly(socket);
    }
    opts.signal?.throwIfAborted();
    if (closed.code === NORMAL) return;
    if (closed.code === POLICY_VIOLATION) {
      const err = errorFromCloseReason(closed.reason);
      // An expired token is refreshed once; refused again, the refusal is the answer.
      if (err.status !== 401 || refreshedFor === token) throw err;
      refreshedFor = token;
      await transport.refreshAfter(token);
      continue;
    }
    // 1013 (the stored events cannot be read right now), 1011, or a dropped connection: reconnect with `since`.
    if (++failures > maxReconnects) throw new CutroomNetworkError(`the ${what.slice(0, -1)} event stream closed ${failures} times in a row (last: ${closed.code} ${closed.reason})`);
    await sleep(Math.min(250 * 2 ** (failures - 1), 5_000), opts.signal);
  }
}

function parse(data: unknown): unknown {
  try {
    return JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data as ArrayBuffer));
  } catch {
    return undefined;
  }
}

function closeQuietly(socket: WebSocketLike) {
  try {
    if (socket.readyState < 2) socket.close(NORMAL, "client stopped");
  } catch {}
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", aborted, { once: true });
  });
}

/** An unbounded async queue: push from event listeners, await next in the generator. */
function queue<T>() {
  const items: T[] = [];
  let waiting: ((item: T) => void) | undefined;
  return {
    push(item: T) {
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve(item);
      } else items.push(item);
    },
    next(): Promise<T> {
      if (items.length > 0) return Promise.resolve(items.shift()!);
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
  };
}
