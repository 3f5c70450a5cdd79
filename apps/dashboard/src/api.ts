import type { Health as HealthSchema } from "@cutroom/contracts";
import { Cutroom, CutroomError, type FileObject, type Tokens } from "@cutroom/sdk";
import type { z } from "zod";

const TOKENS_KEY = "cutroom.tokens";

function storedTokens(): Partial<Tokens> {
  try {
    return JSON.parse(localStorage.getItem(TOKENS_KEY) ?? "{}") as Partial<Tokens>;
  } catch {
    return {};
  }
}

const listeners = new Set<() => void>();

/** The one API client of the app: same origin as the page, tokens kept in localStorage across reloads. */
export const cutroom = new Cutroom({
  baseUrl: location.origin,
  ...storedTokens(),
  onTokens: (tokens) => {
    if (tokens) localStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
    else localStorage.removeItem(TOKENS_KEY);
    for (const listener of listeners) listener();
  },
});

/** Called on sign-in and sign-out (a refused refresh signs out too). */
export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export const signedIn = () => cutroom.tokens.accessToken !== undefined;

/** What an error says to a person: the envelope's message and code, or the exception's text. */
export function describeError(err: unknown): string {
  if (err instanceof CutroomError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

/*
 * Below: what @cutroom/sdk does not offer (yet), kept to this module. The SDK's upload reports
 * progress only at the start and the end, since fetch cannot tell how much of a body is sent;
 * XMLHttpRequest can. Admin routes and /health have no SDK call.
 */

/** A multipart `POST /api/v1/files` with upload progress (0..1); one retry after a token refresh. */
export async function uploadWithProgress(file: File, onProgress: (fraction: number) => void): Promise<FileObject> {
  const send = () =>
    new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/files");
      const token = cutroom.tokens.accessToken;
      if (token) xhr.setRequestHeader("authorization", `Bearer ${token}`);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = () => resolve({ status: xhr.status, body: parseJson(xhr.responseText) });
      xhr.onerror = () => reject(new Error("the upload failed: the connection was lost"));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  let reply = await send();
  if (reply.status === 401 && cutroom.tokens.refreshToken) {
    await cutroom.auth.refresh();
    reply = await send();
  }
  if (reply.status !== 201 && reply.status !== 200) throw envelopeError(reply.status, reply.body);
  onProgress(1);
  return (reply.body as { file: FileObject }).file;
}

/** A GET of a signed-in JSON route the SDK lacks; `path` from the origin (`/api/v1/admin/stats`, `/health`). */
export async function getJson<T>(path: string, opts: { okStatuses?: number[] } = {}): Promise<T> {
  const send = () => fetch(path, { headers: cutroom.tokens.accessToken ? { authorization: `Bearer ${cutroom.tokens.accessToken}` } : {} });
  let res = await send();
  if (res.status === 401 && cutroom.tokens.refreshToken) {
    await cutroom.auth.refresh();
    res = await send();
  }
  const body = parseJson(await res.text());
  if (!res.ok && !(opts.okStatuses ?? []).includes(res.status)) throw envelopeError(res.status, body);
  return body as T;
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

function envelopeError(status: number, body: unknown): CutroomError {
  const error = (body as { error?: { code?: string; message?: string; request_id?: string } } | null)?.error;
  return new CutroomError({ status, code: error?.code ?? "HTTP_ERROR", message: error?.message ?? `the server answered ${status}`, requestId: error?.request_id });
}

/** GET /api/v1/admin/stats: its schema lives in the gateway's admin routes, not in the contracts. */
export interface AdminStats {
  total_users: number;
  users_today: number;
  active_jobs: number;
  completed_jobs_today: number;
  average_processing_time_minutes: number | null;
  total_files: number;
  total_storage_gb: number;
}

/** GET /api/v1/admin/queues, being added beside @cutroom/sdk's admin.queues(): until then a 404, and the page shows the workers' load alone. */
export interface QueueDepth {
  queue: string;
  queued: number;
  held: number;
  running: number;
  pending: number | null;
  ack_pending: number | null;
}

/** GET /health as an admin reads it: every service and worker kind with its instances. */
export type Health = z.infer<typeof HealthSchema>;
