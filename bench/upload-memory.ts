import { spawn, type ChildProcess } from "node:child_process";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, rmSync } from "node:fs";
import { Agent, request, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { stopChild } from "@cutroom/devstack";
import { cpuSpent, cpuTimeByProcess, mapLimit, rssKib, type Api, type Benchmark, type Row } from "./lib.ts";

const MiB = 1024 ** 2;
const FILE_BYTES = 1024 * MiB;
const CHUNK_BYTES = 16 * MiB;
const CHUNKS_IN_PARALLEL = 2;
const TUS_PATCH_BYTES = 64 * MiB;
const SAMPLE_MS = 100;
const SEED = "cutroom upload-memory";
const SERVERS = ["gateway", "storage-service"] as const;

/** A request body: literal bytes, or the byte range [start, end) of the source file, read as it is sent. */
type Piece = Buffer | { start: number; end: number };

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

interface Measured {
  ms: number;
  /** RSS in KiB by process: before the upload, and the highest sample during it. */
  rss: Map<string, { start: number; peak: number }>;
  cpu: Map<string, number>;
  samples: number;
  fileId?: string;
}

/**
 * The resident memory of Cutroom's gateway and storage-service, sampled every 100 ms, while a 1 GiB
 * file goes up each way a client can send it: seed 004's chunked upload (16 MiB chunks, 2 at a time),
 * tus (64 MiB PATCHes), the one-request multipart `POST /files` and a signed PUT. Each stored file
 * is downloaded and its SHA-256 compared with the source's. Against a bare node:http server that
 * streams the same bytes, in one request, to a file.
 */
export const uploadMemory: Benchmark = {
  name: "upload-memory",
  title: "7. Memory while a 1 GiB file goes up",
  apps: ["auth-service", "billing-service", "storage-service", "gateway"],
  timeoutMs: 240_000,
  async run({ stack, api, adminToken, dir, log }) {
    const source = join(dir, "source.bin");
    const peerFile = join(dir, "peer.bin");
    // Keep-alive, as a client's uploads share connections; two sockets for the parallel chunks.
    const agent = new Agent({ keepAlive: true, maxSockets: CHUNKS_IN_PARALLEL });
    let deleteUnfinished: () => Promise<unknown> | undefined = () => undefined;
    try {
      const started = performance.now();
      const sourceSha = await writeSource(source);
      log(`1 GiB source written and hashed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      const { token } = await api.enterpriseUser(adminToken, 1);
      const base = `${stack.url}/api/v1`;
      const auth = { authorization: `Bearer ${token}` };
      const send = (url: string, method: string, headers: Record<string, string>, pieces: Piece[]) => sendPieces(url, { method, headers, pieces, source, agent });
      // An upload a failure left unfinished, deleted at the end (its parts would stay on disk a day).
      let unfinished: string | undefined;
      // tus's DELETE wants its version header; the others take it too.
      deleteUnfinished = () => (unfinished ? send(`${base}${unfinished}`, "DELETE", { ...auth, "tus-resumable": "1.0.0" }, []) : undefined);
      const pids = Object.fromEntries(SERVERS.map((name) => [name, stack.services.children.get(name)!.pid!]));

      const paths: Array<{ label: string; upload: () => Promise<string> }> = [
        {
          label: "chunked (16 MiB × 2)",
          upload: async () => {
            const init = await api.expect(201, "chunked init", api.call("POST", "/chunked-upload/init", { token, json: { filename: "upload-memory.bin", total_size: FILE_BYTES, chunk_size: CHUNK_BYTES, file_type: "application/octet-stream" } }));
            const indexes = Array.from({ length: init.chunk_count as number }, (_, i) => i);
            unfinished = `/chunked-upload/${init.upload_id}`;
            await mapLimit(indexes, CHUNKS_IN_PARALLEL, async (i) => {
              const boundary = `----bench${randomBytes(8).toString("hex")}`;
              const head = Buffer.from(
                `--${boundary}\r\ncontent-disposition: form-data; name="chunk_index"\r\n\r\n${i}\r\n` +
                  `--${boundary}\r\ncontent-disposition: form-data; name="chunk"; filename="chunk-${i}"\r\ncontent-type: application/octet-stream\r\n\r\n`,
              );
              const range = { start: i * CHUNK_BYTES, end: Math.min(FILE_BYTES, (i + 1) * CHUNK_BYTES) };
              const res = await send(`${base}/chunked-upload/chunk/${init.upload_id}`, "POST", { ...auth, "content-type": `multipart/form-data; boundary=${boundary}` }, [head, range, Buffer.from(`\r\n--${boundary}--\r\n`)]);
              if (res.status !== 200) throw new Error(`chunk ${i}: ${res.status} ${res.text}`);
            });
            const done = await api.expect(200, "chunked complete", api.call("POST", `/chunked-upload/complete/${init.upload_id}`, { token, json: {} }));
            unfinished = undefined;
            return done.file_id as string;
          },
        },
        {
          label: "tus (64 MiB PATCHes)",
          upload: async () => {
            const h = { ...auth, "tus-resumable": "1.0.0" };
            const b64 = (s: string) => Buffer.from(s).toString("base64");
            const created = await send(`${base}/tus`, "POST", { ...h, "upload-length": String(FILE_BYTES), "upload-metadata": `filename ${b64("upload-memory.bin")},filetype ${b64("application/octet-stream")}` }, []);
            if (created.status !== 201) throw new Error(`tus create: ${created.status} ${created.text}`);
            const at = new URL(String(created.headers.location), base).href;
            unfinished = new URL(at).pathname.replace("/api/v1", "");
            let fileId: string | undefined;
            for (let offset = 0; offset < FILE_BYTES; offset += TUS_PATCH_BYTES) {
              const end = Math.min(FILE_BYTES, offset + TUS_PATCH_BYTES);
              const res = await send(at, "PATCH", { ...h, "content-type": "application/offset+octet-stream", "upload-offset": String(offset) }, [{ start: offset, end }]);
              if (res.status !== 204 || res.headers["upload-offset"] !== String(end)) throw new Error(`tus PATCH at ${offset}: ${res.status} offset ${res.headers["upload-offset"]} ${res.text}`);
              fileId = res.headers["cutroom-file-id"] as string | undefined;
            }
            if (!fileId) throw new Error("the last tus PATCH named no file (Cutroom-File-Id)");
            unfinished = undefined;
            return fileId;
          },
        },
        {
          label: "multipart POST /files",
          upload: async () => {
            const boundary = `----bench${randomBytes(8).toString("hex")}`;
            const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="upload-memory.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`);
            const res = await send(`${base}/files`, "POST", { ...auth, "content-type": `multipart/form-data; boundary=${boundary}` }, [head, { start: 0, end: FILE_BYTES }, Buffer.from(`\r\n--${boundary}--\r\n`)]);
            if (res.status !== 201) throw new Error(`POST /files: ${res.status} ${res.text}`);
            return (JSON.parse(res.text) as { file: { id: string } }).file.id;
          },
        },
        {
          label: "signed PUT",
          upload: async () => {
            const ticket = await api.expect(201, "upload ticket", api.call("POST", "/uploads", { token, json: { filename: "upload-memory.bin", content_type: "application/octet-stream", size: FILE_BYTES } }));
            unfinished = `/files/${ticket.file_id}`;
            const res = await send(ticket.upload_url, "PUT", ticket.headers, [{ start: 0, end: FILE_BYTES }]);
            if (res.status >= 300) throw new Error(`signed PUT: ${res.status} ${res.text}`);
            const confirmed = await api.expect(200, "upload confirm", api.call("POST", `/uploads/${ticket.file_id}/confirm`, { token, json: {} }));
            unfinished = undefined;
            return confirmed.file.id as string;
          },
        },
      ];

      const results: Array<{ label: string } & Measured> = [];
      for (const path of paths) {
        const m = await measure(pids, path.upload);
        // Each file is checked and deleted before the next goes up: the disk holds one copy at a time.
        try {
          const sha = await downloadSha(api, token, m.fileId!);
          if (sha !== sourceSha) throw new Error(`${path.label}: the stored file's sha256 ${sha} is not the source's ${sourceSha}`);
        } finally {
          await api.expect(204, "delete file", api.call("DELETE", `/files/${m.fileId}`, { token }));
        }
        log(`${path.label}: ${(m.ms / 1000).toFixed(1)} s, ${SERVERS.map((s) => `${s} peak +${mib((m.rss.get(s)!.peak - m.rss.get(s)!.start) * 1024).toFixed(0)} MiB`).join(", ")}; sha256 checked`);
        results.push({ label: path.label, ...m });
      }

      const peer = await startUploadPeer(peerFile);
      let raw: Measured;
      try {
        raw = await measure({ "upload-peer": peer.child.pid! }, async () => {
          const res = await send(`http://127.0.0.1:${peer.port}/upload`, "PUT", { "content-type": "application/octet-stream" }, [{ start: 0, end: FILE_BYTES }]);
          if (res.status !== 200 || (JSON.parse(res.text) as { bytes: number }).bytes !== FILE_BYTES) throw new Error(`peer upload: ${res.status} ${res.text}`);
          return undefined;
        });
      } finally {
        await stopChild(peer.child);
      }
      const peerSha = await fileSha(peerFile);
      if (peerSha !== sourceSha) throw new Error(`the peer's file sha256 ${peerSha} is not the source's ${sourceSha}`);
      log(`peer: ${(raw.ms / 1000).toFixed(1)} s; sha256 checked`);

      const peerRss = raw.rss.get("upload-peer")!;
      const rows: Row[] = results.flatMap((r) => [
        { measure: `${r.label}: duration`, cutroom: r.ms / 1000, peer: raw.ms / 1000, unit: "s" },
        { measure: `${r.label}: throughput`, cutroom: mib(FILE_BYTES) / (r.ms / 1000), peer: mib(FILE_BYTES) / (raw.ms / 1000), unit: "MiB/s" },
        ...SERVERS.flatMap((s) => {
          const rss = r.rss.get(s)!;
          return [
            { measure: `${r.label}: ${s} RSS at start`, cutroom: mib(rss.start * 1024), peer: mib(peerRss.start * 1024), unit: "MiB" },
            { measure: `${r.label}: ${s} peak RSS`, cutroom: mib(rss.peak * 1024), peer: mib(peerRss.peak * 1024), unit: "MiB" },
            { measure: `${r.label}: ${s} peak RSS increase`, cutroom: mib((rss.peak - rss.start) * 1024), peer: mib((peerRss.peak - peerRss.start) * 1024), unit: "MiB" },
          ];
        }),
      ]);
      const cpuPerGib = (cpu: Map<string, number>, names: readonly string[]) => names.map((n) => `${n} ${((cpu.get(n) ?? 0) / 1000 / (FILE_BYTES / 1024 ** 3)).toFixed(1)}`).join(", ");
      return {
        peer: "bare node:http server piping to a file",
        rows,
        notes: [
          "peer: a node:http server in a process of its own that pipes each request's body to a file and answers the bytes written (no auth, no records, no checks); the same 1 GiB sent to it in one PUT; its one process stands in the peer column of both the gateway's and storage-service's rows",
          `source: 1 GiB of AES-128-CTR keystream under a key derived from a fixed seed, written once to a temp file (never in memory) and read from it for each upload; every stored file downloaded through its download URL and its SHA-256 compared with the source's (all equal), then deleted`,
          `RSS (VmRSS) of each process sampled every ${SAMPLE_MS} ms from just before the upload's first request to its last answer (chunked: init to complete, which joins the chunks; tus: creation to the last PATCH; signed PUT: ticket to confirm); the paths ran one after another on the same stack, so a path's start is the previous one's end (garbage not yet collected counts); samples taken: ${results.map((r) => `${r.label} ${r.samples}`).join(", ")}, peer ${raw.samples}`,
          "fs driver; one enterprise user (5 GB file limit); chunks sent with no checksum and no whole-file sha256 at init; every request's body streamed from the file by the bench over keep-alive connections (two for the chunks)",
          `CPU s per GiB, ${results.map((r) => `${r.label}: ${cpuPerGib(r.cpu, [...SERVERS, "bench"])}`).join("; ")}; peer: ${cpuPerGib(raw.cpu, ["upload-peer", "bench"])}`,
        ],
      };
    } finally {
      await deleteUnfinished()?.catch(() => {});
      agent.destroy();
      rmSync(source, { force: true });
      rmSync(peerFile, { force: true });
    }
  },
};

const mib = (bytes: number) => bytes / MiB;

/** Writes FILE_BYTES of a seeded keystream to `path` a MiB at a time (the same bytes every run); returns their SHA-256. */
async function writeSource(path: string): Promise<string> {
  const cipher = createCipheriv("aes-128-ctr", createHash("sha256").update(SEED).digest().subarray(0, 16), Buffer.alloc(16));
  const hash = createHash("sha256");
  const zeros = Buffer.alloc(MiB);
  async function* blocks() {
    for (let i = 0; i < FILE_BYTES / MiB; i++) {
      const block = cipher.update(zeros);
      hash.update(block);
      yield block;
    }
  }
  await pipeline(Readable.from(blocks()), createWriteStream(path));
  return hash.digest("hex");
}

async function fileSha(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The SHA-256 of a stored file, hashed as its download streams in. */
async function downloadSha(api: Api, token: string, fileId: string): Promise<string> {
  const link = await api.expect(200, "download url", api.call("GET", `/files/${fileId}/download-url`, { token }));
  const res = await fetch(link.url);
  if (!res.ok || !res.body) throw new Error(`download: ${res.status}`);
  const hash = createHash("sha256");
  for await (const chunk of res.body) hash.update(chunk);
  return hash.digest("hex");
}

/** One request whose body is streamed from `pieces`; resolves with the whole (small) answer. */
function sendPieces(url: string, opts: { method: string; headers: Record<string, string>; pieces: Piece[]; source: string; agent: Agent }): Promise<Answer> {
  const length = opts.pieces.reduce((sum, p) => sum + (Buffer.isBuffer(p) ? p.length : p.end - p.start), 0);
  const headers = Object.fromEntries(Object.entries(opts.headers).map(([k, v]) => [k.toLowerCase(), v]));
  headers["content-length"] = String(length);
  async function* body() {
    for (const p of opts.pieces) {
      if (Buffer.isBuffer(p)) yield p;
      else if (p.end > p.start) yield* createReadStream(opts.source, { start: p.start, end: p.end - 1, highWaterMark: MiB });
    }
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method, headers, agent: opts.agent }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    pipeline(Readable.from(body()), req).catch(reject);
  });
}

/** Runs `upload`, timing it and sampling the RSS of `pids` (name → pid) every SAMPLE_MS meanwhile. */
async function measure(pids: Record<string, number>, upload: () => Promise<string | undefined>): Promise<Measured> {
  const rss = new Map(Object.entries(pids).map(([name, pid]) => [name, { start: rssKib(pid), peak: 0 }]));
  let samples = 0;
  const sample = () => {
    samples++;
    for (const [name, pid] of Object.entries(pids)) {
      const r = rss.get(name)!;
      r.peak = Math.max(r.peak, r.start, rssKib(pid));
    }
  };
  const before = cpuTimeByProcess();
  const started = performance.now();
  const timer = setInterval(sample, SAMPLE_MS);
  try {
    const fileId = await upload();
    const ms = performance.now() - started;
    sample();
    return { ms, rss, cpu: cpuSpent(before), samples, fileId };
  } finally {
    clearInterval(timer);
  }
}

/** peer-upload.ts in a process of its own, writing to `path`; resolves with its port. */
async function startUploadPeer(path: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "peer-upload.ts"), path], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m) => resolve((m as { port: number }).port));
    child.once("exit", (code) => reject(new Error(`the upload peer exited with ${code}`)));
  });
  return { port, child };
}
