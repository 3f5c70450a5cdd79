import { randomUUID } from "node:crypto";

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** A small API client, as an app developer would write one. */
export function createClient(baseUrl: string) {
  const request = async <T = any>(
    method: string,
    path: string,
    opts: { token?: string; json?: unknown; form?: Record<string, string>; body?: NonNullable<RequestInit["body"]>; headers?: Record<string, string> } = {},
  ): Promise<Reply<T>> => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: NonNullable<RequestInit["body"]> | undefined = opts.body;
    if (opts.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(opts.form).toString();
    }
    const res = await fetch(baseUrl + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {}
    return { status: res.status, headers: res.headers, body: parsed as T };
  };

  const api = {
    request,
    get: <T = any>(path: string, token?: string) => request<T>("GET", `/api/v1${path}`, { token }),
    post: <T = any>(path: string, json: unknown, token?: string, headers?: Record<string, string>) => request<T>("POST", `/api/v1${path}`, { json, token, headers }),
    delete: <T = any>(path: string, token?: string) => request<T>("DELETE", `/api/v1${path}`, { token }),

    /** Registers a fresh user and logs in; returns the tokens. */
    async signUp(email = `user-${randomUUID()}@e2e.cutroom.test`, password = "correct horse battery") {
      const reg = await api.post("/auth/register", { email, password, full_name: "E2E User" });
      if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`);
      const login = await api.post("/auth/login", { email, password });
      if (login.status !== 200) throw new Error(`login failed: ${login.status} ${JSON.stringify(login.body)}`);
      return { email, password, user_id: reg.body.user_id as string, token: login.body.access_token as string, refresh: login.body.refresh_token as string };
    },

    /** Signed upload: ask for a URL, PUT the bytes, confirm. Returns the confirm reply. */
    async upload(token: string, filename: string, contentType: string, bytes: Uint8Array) {
      const ticket = await api.post("/uploads", { filename, content_type: contentType, size: bytes.byteLength }, token);
      if (ticket.status !== 201) return ticket;
      const put = await fetch(ticket.body.upload_url, { method: "PUT", headers: ticket.body.headers, body: bytes });
      if (!put.ok) return { status: put.status, headers: put.headers, body: await put.json().catch(() => null) } as Reply;
      return api.post(`/uploads/${ticket.body.file_id}/confirm`, {}, token);
    },
  };
  return api;
}
export type Client = ReturnType<typeof createClient>;

export function expectEnvelope(reply: Reply, status: number, code?: string) {
  const ok =
    reply.status === status &&
    typeof reply.body?.error?.message === "string" &&
    typeof reply.body?.error?.request_id === "string" &&
    (code === undefined || reply.body.error.code === code);
  if (!ok) throw new Error(`expected ${status} ${code ?? ""} in the error envelope, got ${reply.status} ${JSON.stringify(reply.body)}`);
}
