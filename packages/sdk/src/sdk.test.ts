import { createHash, randomBytes, randomUUID } from "node:crypto";
import { makePng } from "@cutroom/e2e/media";
import { useStack } from "@cutroom/e2e/stack";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Cutroom, CutroomError, CutroomNetworkError, type JobEvent, type Progress, type Tokens, type WebSocketConstructor } from "./index.ts";

// The real processes: accounts, files, jobs and the image worker, driven only through the SDK.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"] });

const MiB = 1024 * 1024;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const password = "correct horse battery";

function client(opts: Partial<ConstructorParameters<typeof Cutroom>[0]> = {}) {
  return new Cutroom({ baseUrl: ctx.stack.url, WebSocket: WebSocket as unknown as WebSocketConstructor, ...opts });
}

/** A fresh account, signed in on a client of its own. */
async function signedIn(opts: Partial<ConstructorParameters<typeof Cutroom>[0]> = {}) {
  const sdk = client(opts);
  const email = `sdk-${randomUUID()}@e2e.cutroom.test`;
  await sdk.auth.register({ email, password, full_name: "SDK User" });
  await sdk.auth.login({ email, password });
  return { sdk, email };
}

describe("auth", () => {
  it("registers, logs in, tells who is signed in, and forgets the tokens on logout", async () => {
    const seen: (Tokens | null)[] = [];
    const sdk = client({ onTokens: (t) => seen.push(t) });
    const email = `sdk-${randomUUID()}@e2e.cutroom.test`;
    const reg = await sdk.auth.register({ email, password, full_name: "Ada" });
    expect(reg).toMatchObject({ email, tier: "free", credits: 100 });
    const pair = await sdk.auth.login({ email, password });
    expect(seen).toEqual([{ accessToken: pair.access_token, refreshToken: pair.refresh_token }]);
    expect(await sdk.auth.me()).toMatchObject({ user_id: reg.user_id, email, full_name: "Ada" });

    expect(await sdk.auth.logout()).toEqual({ revoked: 1 });
    expect(seen.at(-1)).toBeNull();
    await expect(sdk.auth.me()).rejects.toMatchObject({ status: 401, code: "UNAUTHORIZED" });
  });

  it("refreshes once for concurrent calls that all meet a 401, so the rotated refresh token is not seen as reused", async () => {
    const { sdk: first } = await signedIn();
    let refreshes = 0;
    const counting: typeof fetch = (input, init) => {
      if (String(input).endsWith("/auth/refresh")) refreshes++;
      return fetch(input, init);
    };
    const tokens: (Tokens | null)[] = [];
    // An access token the gateway refuses, as an expired one is: every call below meets a 401 first.
    const sdk = client({ accessToken: "expired.access.token", refreshToken: first.tokens.refreshToken, fetch: counting, onTokens: (t) => tokens.push(t) });

    const [me, jobs, files, projects, again] = await Promise.all([sdk.auth.me(), sdk.jobs.list(), sdk.files.list(), sdk.projects.list(), sdk.auth.me()]);
    expect(me.email).toBe(again.email);
    expect([jobs.total, files.total, projects.total]).toEqual([0, 0, 0]);
    expect(refreshes).toBe(1);
    expect(tokens).toHaveLength(1);
    expect(tokens[0]!.refreshToken).not.toBe(first.tokens.refreshToken);

    // Had a second refresh replayed the first refresh token, the whole family would be revoked now.
    await sdk.auth.refresh();
    expect(refreshes).toBe(2);
    expect((await sdk.auth.me()).email).toBe(me.email);
  });
});

describe("files", () => {
  it("uploads by multipart and by signed URL, lists, gets, downloads and deletes", async () => {
    const { sdk } = await signedIn();
    const png = await makePng(40, 30);
    const progress: Progress[] = [];
    const multipart = await sdk.files.upload(new Blob([png], { type: "image/png" }), { filename: "a.png", onProgress: (p) => progress.push(p) });
    expect(multipart).toMatchObject({ filename: "a.png", kind: "image", size: png.length, status: "ready" });
    expect(progress).toEqual([
      { loaded: 0, total: png.length },
      { loaded: png.length, total: png.length },
    ]);
    const signed = await sdk.files.uploadSigned(new Blob([png]), { filename: "b.png", contentType: "image/png" });
    expect(signed).toMatchObject({ filename: "b.png", kind: "image", size: png.length });

    expect((await sdk.files.list({ kind: "image" })).data.map((f) => f.id).sort()).toEqual([multipart.id, signed.id].sort());
    expect((await sdk.files.get(signed.id)).filename).toBe("b.png");
    expect(sha256(new Uint8Array(await (await sdk.files.download(signed.id)).arrayBuffer()))).toBe(sha256(png));
    expect((await sdk.files.downloadUrl(signed.id, { expiresIn: 60 })).expires_in).toBe(60);

    await sdk.files.delete(multipart.id);
    await expect(sdk.files.get(multipart.id)).rejects.toMatchObject({ status: 404, code: "NOT_FOUND" });
  });

  it("uploads in chunks, pauses after the first chunk, resumes with the chunks the server is missing, and keeps the same bytes", async () => {
    const { sdk } = await signedIn();
    // Two whole chunks and a short last one.
    const bytes = new Uint8Array(randomBytes(12 * MiB));
    const progress: Progress[] = [];
    let settled = false;
    const upload = sdk.files.uploadResumable(new Blob([bytes]), {
      filename: "take-1.bin",
      chunkSize: 5 * MiB,
      concurrency: 1,
      sha256: sha256(bytes),
      onProgress: (p) => {
        progress.push(p);
        if (p.loaded === 5 * MiB && !upload.paused && progress.filter((x) => x.loaded === 5 * MiB).length === 1) upload.pause();
      },
    });
    void upload.done.then(() => (settled = true));
    // Polled for as long as a loaded machine may take to send a chunk (expect.poll's own limit is 1 s).
    const waiting = { timeout: 15_000, interval: 50 };
    await expect.poll(() => upload.paused && progress.some((p) => p.loaded === 5 * MiB), waiting).toBe(true);
    // Paused: the server holds the first chunk only, and the upload stays open.
    await expect.poll(async () => (await sdk.files.uploadStatus(upload.uploadId!)).missing, waiting).toEqual([1, 2]);
    expect(settled).toBe(false);

    upload.resume();
    const done = await upload.done;
    expect(done).toMatchObject({ filename: "take-1.bin", file_size: bytes.length });
    expect(progress.at(-1)).toEqual({ loaded: bytes.length, total: bytes.length });
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.loaded).toBeGreaterThanOrEqual(progress[i - 1]!.loaded);
    const stored = new Uint8Array(await (await sdk.files.download(done.file_id)).arrayBuffer());
    expect(sha256(stored)).toBe(sha256(bytes));
  });

  it("completes an upload resumed before its paused chunks have wound down (a pause and a resume back to back)", async () => {
    const { sdk } = await signedIn();
    const bytes = new Uint8Array(randomBytes(11 * MiB));
    let toggled = false;
    const upload = sdk.files.uploadResumable(new Blob([bytes]), {
      filename: "toggle.bin",
      chunkSize: 5 * MiB,
      concurrency: 1,
      onProgress: (p) => {
        if (p.loaded === 5 * MiB && !toggled) {
          toggled = true;
          upload.pause();
          upload.resume();
        }
      },
    });
    const done = await upload.done;
    expect(toggled).toBe(true);
    expect(done).toMatchObject({ filename: "toggle.bin", file_size: bytes.length });
    const stored = new Uint8Array(await (await sdk.files.download(done.file_id)).arrayBuffer());
    expect(sha256(stored)).toBe(sha256(bytes));
  });
});

describe("jobs", () => {
  it("creates an image.thumbnail job with an idempotency key of its own and waits until it has succeeded", async () => {
    const { sdk } = await signedIn();
    const file = await sdk.files.upload(new Blob([await makePng(120, 80)], { type: "image/png" }), { filename: "in.png" });
    const job = await sdk.jobs.create({ type: "image.thumbnail", input: { file_id: file.id, width: 32, height: 32, format: "png" } });
    expect(job).toMatchObject({ type: "image.thumbnail", status: "queued" });
    const done = await sdk.jobs.wait(job.id);
    expect(done).toMatchObject({ id: job.id, status: "succeeded", credits: { state: "captured" } });
    expect(done.result!.files).toHaveLength(1);

    // A key given twice addresses one job.
    const key = randomUUID();
    const a = await sdk.jobs.create({ type: "image.thumbnail", input: { file_id: file.id } }, { idempotencyKey: key });
    const b = await sdk.jobs.create({ type: "image.thumbnail", input: { file_id: file.id } }, { idempotencyKey: key });
    expect(b.id).toBe(a.id);
    expect((await sdk.jobs.list({ type: "image.thumbnail" })).total).toBe(2);
    // Without a working WebSocket, wait polls.
    const noSockets = client({ ...sdk.tokens, WebSocket: class {
      constructor() {
        throw new Error("no WebSocket here");
      }
    } as unknown as WebSocketConstructor });
    expect(await noSockets.jobs.wait(a.id, { pollIntervalMs: 100 })).toMatchObject({ id: a.id, status: "succeeded" });

    // @ts-expect-error an image.thumbnail input's width is a number
    await expect(sdk.jobs.create({ type: "image.thumbnail", input: { file_id: file.id, width: "big" } })).rejects.toMatchObject({ status: 422 });
  });

  it("creates a batch with names and metadata, and finds its jobs by metadata and by part of the name", async () => {
    const { sdk } = await signedIn();
    const file = await sdk.files.upload(new Blob([await makePng(64, 64)], { type: "image/png" }), { filename: "in.png" });
    const { jobs } = await sdk.jobs.createBatch([
      { type: "image.thumbnail", input: { file_id: file.id }, display_name: "Hero shot", metadata: { scene: "intro", take: 2 } },
      { type: "image.thumbnail", input: { file_id: file.id }, display_name: "Outro still", metadata: { scene: "outro" } },
    ]);
    expect(jobs.map((j) => j.display_name)).toEqual(["Hero shot", "Outro still"]);
    const intro = await sdk.jobs.list({ metadata: { scene: "intro" } });
    expect(intro.data.map((j) => j.id)).toEqual([jobs[0]!.id]);
    expect((await sdk.jobs.list({ metadata: { scene: "intro", take: "3" } })).total).toBe(0);
    expect((await sdk.jobs.list({ display_name: "outro" })).data.map((j) => j.id)).toEqual([jobs[1]!.id]);
  });

  it("follows a job's events across a socket cut mid-stream: reconnects with since, no seq missed or repeated", async () => {
    const opened: string[] = [];
    let cut = false;
    // The first socket is terminated after two events, and what it had not yet handed over is lost, as on a dropped connection.
    class CutAfterTwo extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        opened.push(url);
        if (opened.length > 1) return;
        let seen = 0;
        const add = this.addEventListener.bind(this);
        this.addEventListener = ((type: string, listener: (e: { data: unknown }) => void) => {
          if (type !== "message") return add(type as "open", listener as () => void);
          add("message", (event) => {
            if (cut) return;
            listener(event);
            if (typeof JSON.parse(String(event.data)).seq === "number" && ++seen === 2) {
              cut = true;
              this.terminate();
            }
          });
        }) as typeof this.addEventListener;
      }
    }
    const { sdk } = await signedIn({ WebSocket: CutAfterTwo as unknown as WebSocketConstructor });
    const file = await sdk.files.upload(new Blob([await makePng()], { type: "image/png" }), { filename: "in.png" });
    const job = await sdk.jobs.create({ type: "image.thumbnail", input: { file_id: file.id } });

    const events: JobEvent[] = [];
    for await (const e of sdk.jobs.events(job.id)) events.push(e);
    expect(cut).toBe(true);
    expect(opened).toHaveLength(2);
    expect(new URL(opened[1]!).searchParams.get("since")).toBe("2");
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.length).toBeGreaterThan(2);
    expect(events.at(-1)).toMatchObject({ type: "result", status: "succeeded" });
  });
});

describe("errors", () => {
  it("throws CutroomError with the envelope's status, code, details and request id on a 422 and a 404", async () => {
    const { sdk } = await signedIn();
    const invalid = await sdk.jobs.create({ type: "image.thumbnail", input: { file_id: "not-a-uuid" } }).catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(CutroomError);
    expect(invalid).toMatchObject({ status: 422, code: "INVALID_INPUT", requestId: expect.stringMatching(/.+/), details: { fields: expect.any(Array) } });

    await expect(sdk.jobs.createUntyped({ type: "image.no-such-type", input: {} })).rejects.toMatchObject({ status: 422, code: "INVALID_INPUT" });

    const missing = await sdk.jobs.get(randomUUID()).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(CutroomError);
    expect(missing).toMatchObject({ status: 404, code: "NOT_FOUND", message: expect.any(String), requestId: expect.stringMatching(/.+/) });

    // A job event stream for a job that is not the caller's is refused the same way.
    await expect(sdk.jobs.events(randomUUID()).next()).rejects.toMatchObject({ status: 404, code: "NOT_FOUND" });
  });

  it("tells a server that cannot be reached apart from an answer", async () => {
    const sdk = new Cutroom({ baseUrl: "http://127.0.0.1:9", accessToken: "x" });
    await expect(sdk.auth.me()).rejects.toBeInstanceOf(CutroomNetworkError);
  });
});
