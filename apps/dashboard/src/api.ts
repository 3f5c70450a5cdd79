import { Cutroom, CutroomError, type FileObject, type Tokens } from "@cutroom/sdk";

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
 * The one call not made through @cutroom/sdk: its upload reports progress only at the start and the
 * end, since fetch cannot tell how much of a body is sent; XMLHttpRequest can.
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
