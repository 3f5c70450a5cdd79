import WebSocket from "ws";

export interface Watched {
  messages: any[];
  closeCode: number;
  closeReason: string;
}

/** Follows `WS /ws/jobs/{id}` (or `opts.path`) until the server closes it; `onMessage` may act mid-stream. */
export function watchJob(
  baseUrl: string,
  token: string,
  jobId: string,
  opts: { since?: number; auth?: "header" | "query" | "protocol"; onMessage?: (m: any, ws: WebSocket) => void; timeoutMs?: number; path?: string } = {},
): Promise<Watched> {
  const wsUrl = new URL(opts.path ?? `/ws/jobs/${jobId}`, baseUrl.replace(/^http/, "ws"));
  if (opts.since !== undefined) wsUrl.searchParams.set("since", String(opts.since));
  const auth = opts.auth ?? "header";
  if (auth === "query") wsUrl.searchParams.set("access_token", token);
  const ws =
    auth === "protocol"
      ? new WebSocket(wsUrl, ["bearer", token])
      : new WebSocket(wsUrl, auth === "header" ? { headers: { authorization: `Bearer ${token}` } } : {});
  const messages: any[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no close within ${opts.timeoutMs ?? 60_000} ms; got ${JSON.stringify(messages.map((m) => m.type))}`));
    }, opts.timeoutMs ?? 60_000);
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString());
      messages.push(m);
      opts.onMessage?.(m, ws);
    });
    ws.on("close", (code, reason) => {
      clearTimeout(timer);
      resolve({ messages, closeCode: code, closeReason: reason.toString() });
    });
    ws.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Follows `WS /ws/pipelines/{id}` until the server closes it (after pipeline_completed). */
export const watchPipeline = (baseUrl: string, token: string, pipelineId: string, opts: Omit<NonNullable<Parameters<typeof watchJob>[3]>, "path"> = {}) =>
  watchJob(baseUrl, token, pipelineId, { ...opts, path: `/ws/pipelines/${pipelineId}` });

/** The job events among the messages (everything but the snapshot and pongs). */
export const eventsOf = (w: Watched) => w.messages.filter((m) => typeof m.seq === "number");

export function expectGapFree(events: { seq: number }[], from = 1) {
  events.forEach((e, i) => {
    if (e.seq !== from + i) throw new Error(`seq gap: expected ${from + i}, got ${e.seq} (all: ${events.map((x) => x.seq).join(",")})`);
  });
}

export function expectProgressNeverBackwards(events: { type: string; progress?: number }[]) {
  let last = -1;
  for (const e of events.filter((x) => x.type === "progress")) {
    if (e.progress! < last) throw new Error(`progress went back from ${last} to ${e.progress}`);
    last = e.progress!;
  }
}
