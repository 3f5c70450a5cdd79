// Every operation of /openapi.json, fed malformed input: wrong types for every field, huge and deep
// values, NUL and odd unicode, empty and garbage bodies, wrong content types, bad multipart, path
// parameters that are not ids, huge query values. Each answer must be a 2xx (the input happened to be
// valid) or a 4xx in the error envelope, within REQUEST_TIMEOUT_MS; afterwards /health is 200 and every
// process still runs. Inputs come from a seeded generator: CUTROOM_FUZZ_SEED=<n> replays a run.
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { makePng } from "@cutroom/e2e/media";
import { signUpAdmin, useStack } from "@cutroom/e2e/stack";
import WebSocket from "ws";
import { describe, expect, it } from "vitest";
import { fillPath, getOperations, resolveSchema, type Operation } from "./openapi.ts";
import { filePartHead } from "./multipart.ts";
import { deadApps } from "./services.ts";

const SEED = Number(process.env.CUTROOM_FUZZ_SEED ?? 20230605);
const REQUEST_TIMEOUT_MS = 10_000;
const MB = 1024 * 1024;

// The whole product, workers included: "every process still runs" must cover them all.
const ctx = useStack();

/** mulberry32: a small seeded generator, so that a failing run can be replayed. */
function seeded(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    int,
    pick: <T>(items: readonly T[]) => items[int(items.length)]!,
    /** Code points from every plane, surrogates and controls included. */
    unicode: (length: number) =>
      Array.from({ length }, () => {
        const ranges = [
          [0x00, 0x1f],
          [0x20, 0x7e],
          [0x80, 0x9f],
          [0x200b, 0x202e],
          [0xd800, 0xdfff],
          [0xfff0, 0xffff],
          [0x1f300, 0x1faff],
          [0xe0000, 0xe007f],
        ] as const;
        const [lo, hi] = ranges[int(ranges.length)]!;
        const cp = lo + int(hi - lo + 1);
        return cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
      }).join(""),
    bytes: (length: number) => Buffer.from(Array.from({ length }, () => int(256))),
  };
}
const rng = seeded(SEED);

/** Values of the wrong type, out of range, or made to break parsers and databases. */
function oddValues(): unknown[] {
  return [
    42, -1, 0, 1.5, 2 ** 53 + 1, 1e308, -1e308, true, false, null, [], [1, "a", null], {}, { nested: { deeper: [{}] } },
    "", " ", "0", "-1", "true", "null", "NaN", "Infinity", "1e309", "00000000-0000-0000-0000-000000000000",
    "\u0000", "a\u0000b", "\ud800", "\udfff\ud800", "\u202egnp.exe", "\ufeff\u200b\u2028\u2029\u0085", "👩‍👩‍👧‍👦".repeat(64), "Ω≈ç√∫˜µ≤≥÷",
    "' or 1=1 --", "<script>alert(1)</script>", "../../../../etc/passwd", "%00%2e%2e%2f", "{{7*7}}", "__proto__",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a lookup a vulnerable logger would expand, meant literally
    "${jndi:ldap://127.0.0.1/x}",
    "x".repeat(10_000), rng.unicode(1 + rng.int(64)), rng.unicode(1 + rng.int(512)),
  ];
}

const deepArray = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
const deepObject = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;

interface Case {
  label: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
}
interface Outcome {
  status?: number;
  text?: string;
  problem?: string;
  ms: number;
}

/**
 * Sends one case with node:http, as given (no normalisation of the path, a body on a GET if asked).
 * An answer that arrives while the body is still being sent counts (the server may refuse early and
 * close); an event stream counts once its head is in.
 */
function send(c: Case): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = Date.now();
    let answered = false;
    let finished = false;
    const finish = (o: Omit<Outcome, "ms">) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ...o, ms: Date.now() - started });
    };
    // A body always goes with its length: without one, Node sends a GET's body unframed, which is our mistake, not the server's.
    const headers = c.body === undefined ? c.headers : { ...c.headers, "content-length": String(Buffer.byteLength(c.body)) };
    const req = httpRequest(ctx.stack.url + c.path, { method: c.method, headers, agent: false }, (res) => {
      answered = true;
      if (String(res.headers["content-type"]).startsWith("text/event-stream")) return finish({ status: res.statusCode });
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => finish({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      res.on("error", (err) => finish({ status: res.statusCode, problem: `answer broke off: ${err.message}` }));
    });
    const timer = setTimeout(() => finish({ problem: `no answer within ${REQUEST_TIMEOUT_MS} ms` }), REQUEST_TIMEOUT_MS);
    req.on("error", (err) => {
      if (!answered) finish({ problem: `no answer: ${err.message}` });
    });
    req.end(c.body);
  });
}

/** What is wrong with an outcome, or undefined: 2xx, or 4xx in the envelope, in time. */
function verdict(o: Outcome): string | undefined {
  if (o.problem) return o.problem;
  const status = o.status ?? 0;
  if (status >= 200 && status < 300) return undefined;
  if (status < 400 || status >= 500) return `status ${status}: ${o.text?.slice(0, 200)}`;
  try {
    const body = JSON.parse(o.text ?? "");
    if (typeof body?.error?.code === "string" && typeof body.error.message === "string" && typeof body.error.request_id === "string") return undefined;
  } catch {}
  return `status ${status} outside the error envelope: ${o.text?.slice(0, 200)}`;
}

/** A value that fits `schema`, from its type, format, enum and name: the base that one field at a time is spoilt from. */
function sample(spec: any, schema: any, name: string, ids: Ids): unknown {
  const s = resolveSchema(spec, schema);
  const option = s?.anyOf?.find((o: any) => o.type !== "null") ?? s?.oneOf?.[0];
  if (option) return sample(spec, option, name, ids);
  if (s?.enum) return s.enum[0];
  if (s?.const !== undefined) return s.const;
  const byName: Record<string, unknown> = {
    email: `fuzz-${randomUUID()}@e2e.cutroom.test`,
    password: "correct horse battery",
    full_name: "Fuzz",
    filename: "a.png",
    content_type: "image/png",
    type: "image.resize",
    input: { file_id: ids.file, width: 8 },
    file_id: ids.file,
    user_id: ids.victim,
    refresh_token: "not-a-refresh-token",
  };
  if (name in byName) return byName[name];
  switch (s?.type) {
    case "object":
      return Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, sample(spec, v, k, ids)]));
    case "array":
      return [];
    case "integer":
    case "number":
      return Math.max(1, s.minimum ?? 1);
    case "boolean":
      return false;
    default:
      return s?.format === "uuid" ? randomUUID() : "x".repeat(Math.max(1, s?.minLength ?? 1));
  }
}

/** Real ids of the fuzzing user's (and the admin's victim's), so that some requests reach past the lookup. */
interface Ids {
  file: string;
  job: string;
  upload: string;
  victim: string;
}
const realId = (o: Operation, ids: Ids) =>
  o.path.includes("/admin/users/") ? ids.victim : o.path.includes("/uploads/") ? ids.upload : o.path.includes("/jobs/") ? ids.job : ids.file;

const badIds = () => ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00", "' or 1=1 --", "..%2f..%2fetc%2fpasswd", "\u0000", "𝕏", "x".repeat(5000), "-1", "1e309", "{}", wellFormed(rng.unicode(16))];
/** A URL can carry only whole characters: lone surrogates become U+FFFD. */
const wellFormed = (s: string) => s.replace(/[\ud800-\udfff]/g, "\ufffd");

/** Every malformed request for one operation. */
function casesFor(spec: any, o: Operation, ids: Ids, token: string): Case[] {
  const auth = { authorization: `Bearer ${token}` };
  const cases: Case[] = [];
  const add = (label: string, c: Partial<Case> & { body?: Buffer | string; type?: string }) => {
    const headers = { ...auth, ...c.headers, ...(c.type ? { "content-type": c.type } : {}) };
    cases.push({ label: `${o.key} ${label}`, method: c.method ?? o.method, path: c.path ?? fillPath(o.path, realId(o, ids)), headers, body: c.body });
  };
  const params = (o.op.parameters ?? []) as Array<{ name: string; in: string; schema: any }>;
  const jsonSchema = o.op.requestBody?.content?.["application/json"]?.schema;
  const base = jsonSchema ? (sample(spec, jsonSchema, "", ids) as Record<string, unknown>) : undefined;
  const json = (value: unknown) => ({ body: JSON.stringify(value), type: "application/json" });

  // The valid-looking request, then path parameters that are not ids.
  add("as documented", base ? json(base) : {});
  if (o.path.includes("{")) for (const id of badIds()) add(`path ${JSON.stringify(id.slice(0, 20))}`, { path: fillPath(o.path, id), ...(base ? json(base) : {}) });

  // Query parameters of the wrong type, and huge.
  for (const p of params.filter((q) => q.in === "query")) {
    for (const v of ["-5", "abc", "1e309", "NaN", "[object Object]", "true", "\u0000", "%ff%fe", "x".repeat(2000)]) {
      add(`query ${p.name}=${JSON.stringify(v.slice(0, 20))}`, { path: `${fillPath(o.path, realId(o, ids))}?${p.name}=${encodeURIComponent(v)}` });
    }
    add(`query ${p.name} repeated`, { path: `${fillPath(o.path, realId(o, ids))}?${p.name}=1&${p.name}=2&${p.name}[]=3` });
  }
  for (const size of [8 * 1024, 64 * 1024, MB]) add(`query of ${size} bytes`, { path: `${fillPath(o.path, realId(o, ids))}?q=${"x".repeat(size)}` });
  if (params.some((p) => p.in === "header" && p.name === "idempotency-key")) {
    for (const key of ["", "x".repeat(201), "x".repeat(8000), rng.unicode(8).replace(/[^\x20-\x7e]/g, "?")]) add(`idempotency-key of ${key.length}`, { ...json(base), headers: { "idempotency-key": key } });
  }

  // Each field of a JSON body, spoilt one at a time; then the whole body.
  if (base) {
    for (const field of Object.keys(base)) {
      for (const v of oddValues()) add(`${field}=${JSON.stringify(v)?.slice(0, 30)}`, json({ ...base, [field]: v }));
      add(`${field} missing`, json(Object.fromEntries(Object.entries(base).filter(([k]) => k !== field))));
    }
    const first = Object.keys(base)[0] ?? "x";
    add("a 1 MB string", json({ ...base, [first]: "x".repeat(MB) }));
    add("a field 40 levels deep", { body: JSON.stringify({ ...base }).replace(/^\{/, `{"deep":${deepObject(40)},`), type: "application/json" });
    add("extra fields", json({ ...base, role: "admin", user_id: ids.victim, credits: 1e9 }));
    add("__proto__ key", { body: `{"__proto__":{"admin":true},${JSON.stringify(base).slice(1)}`, type: "application/json" });
    add("constructor.prototype key", { body: `{"constructor":{"prototype":{"admin":true}},${JSON.stringify(base).slice(1)}`, type: "application/json" });
    add("as a form", { body: new URLSearchParams(Object.entries(base).map(([k, v]): [string, string] => [k, String(v)])).toString(), type: "application/x-www-form-urlencoded" });
  }
  const bodies: Array<[string, Buffer | string, string | undefined]> = [
    ["an empty JSON body", "", "application/json"],
    ["broken JSON", "{not json", "application/json"],
    ["JSON null", "null", "application/json"],
    ["a JSON string", JSON.stringify("just a string"), "application/json"],
    ["a JSON array", "[1,2,3]", "application/json"],
    ["an array 200,000 deep", deepArray(200_000), "application/json"],
    ["an object 10,000 deep", deepObject(10_000), "application/json"],
    ["2 MB of JSON", JSON.stringify({ pad: "x".repeat(2 * MB) }), "application/json"],
    ["JSON with a charset", JSON.stringify(base ?? {}), "application/json; charset=utf-16"],
    ["garbage bytes", rng.bytes(4096), "application/octet-stream"],
    ["garbage as JSON", rng.bytes(512), "application/json"],
    ["text", rng.unicode(256), "text/plain"],
    ["XML", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "application/xml"],
    ["a body without a type", JSON.stringify(base ?? {}), undefined],
    ["an odd content type", "{}", "application/x-\u00ff; boundary=\"\""],
    ["multipart without a boundary", "--x\r\n\r\n", "multipart/form-data"],
    ["not really multipart", "--x\r\nnot really multipart", "multipart/form-data; boundary=x"],
  ];
  // A GET or DELETE is answered without its body being read: it gets one small body, the others every kind.
  if (o.method === "GET" || o.method === "DELETE") add("with a JSON body", json({ unexpected: [1, { deep: null }], limit: "lots" }));
  else for (const [label, body, type] of bodies) add(label, { body, type });
  return cases;
}

/** Malformed multipart for the one multipart operation, POST /api/v1/files. */
function multipartCases(token: string, png: Buffer): Case[] {
  const b = "fuzz-boundary";
  const end = Buffer.from(`\r\n--${b}--\r\n`);
  const part = (type: string, filename = "a.png", bytes: Buffer = png) => Buffer.concat([filePartHead(b, type, filename), bytes]);
  const variants: Array<[string, Buffer | string, string]> = [
    ["a valid file", Buffer.concat([part("image/png"), end]), `multipart/form-data; boundary=${b}`],
    ["unterminated", part("image/png"), `multipart/form-data; boundary=${b}`],
    ["another boundary", Buffer.concat([part("image/png"), end]), "multipart/form-data; boundary=other"],
    ["no boundary", Buffer.concat([part("image/png"), end]), "multipart/form-data"],
    ["an empty body", "", `multipart/form-data; boundary=${b}`],
    ["only the closing boundary", end, `multipart/form-data; boundary=${b}`],
    ["no file part", `--${b}\r\ncontent-disposition: form-data; name="project_id"\r\n\r\n${randomUUID()}\r\n--${b}--\r\n`, `multipart/form-data; boundary=${b}`],
    ["two file parts", Buffer.concat([part("image/png"), Buffer.from("\r\n"), part("image/png", "b.png"), end]), `multipart/form-data; boundary=${b}`],
    ["a part without a disposition", `--${b}\r\ncontent-type: image/png\r\n\r\n${png.toString("latin1")}\r\n--${b}--\r\n`, `multipart/form-data; boundary=${b}`],
    ["a 100 kB part header", Buffer.concat([Buffer.from(`--${b}\r\nx-pad: ${"x".repeat(100_000)}\r\n`), part("image/png").subarray(b.length + 4), end]), `multipart/form-data; boundary=${b}`],
    ["a NUL in the filename", Buffer.concat([part("image/png", "a\u0000.png"), end]), `multipart/form-data; boundary=${b}`],
    ["a path for a filename", Buffer.concat([part("image/png", "../../../../etc/passwd"), end]), `multipart/form-data; boundary=${b}`],
    ["odd unicode in the filename", Buffer.concat([part("image/png", `${rng.unicode(40).replace(/["\r\n]/g, "")}.png`), end]), `multipart/form-data; boundary=${b}`],
    ["a garbage part type", Buffer.concat([part("\u00ff/\u00fe; x=\u0000"), end]), `multipart/form-data; boundary=${b}`],
    ["a very long part type", Buffer.concat([part(`image/${"x".repeat(3000)}`), end]), `multipart/form-data; boundary=${b}`],
    ["garbage bytes as a PNG", Buffer.concat([part("image/png", "a.png", rng.bytes(8192)), end]), `multipart/form-data; boundary=${b}`],
    ["project_id not a UUID", Buffer.concat([Buffer.from(`--${b}\r\ncontent-disposition: form-data; name="project_id"\r\n\r\n' or 1=1 --\r\n`), part("image/png"), end]), `multipart/form-data; boundary=${b}`],
    ["1000 fields before the file", Buffer.concat([Buffer.from(Array.from({ length: 1000 }, (_, i) => `--${b}\r\ncontent-disposition: form-data; name="f${i}"\r\n\r\nv\r\n`).join("")), part("image/png"), end]), `multipart/form-data; boundary=${b}`],
    ["nested multipart", Buffer.concat([Buffer.from(`--${b}\r\ncontent-disposition: form-data; name="file"; filename="n.bin"\r\ncontent-type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\n\r\nx\r\n--inner--`), end]), `multipart/form-data; boundary=${b}`],
    ["random bytes", rng.bytes(16_384), `multipart/form-data; boundary=${b}`],
  ];
  return variants.map(([label, body, type]) => ({ label: `POST /api/v1/files multipart ${label}`, method: "POST", path: "/api/v1/files", headers: { authorization: `Bearer ${token}`, "content-type": type }, body }));
}

describe("fuzzing every documented operation", () => {
  it(`answers malformed input with a 2xx or a 4xx in the envelope, in time, and every process survives (seed ${SEED})`, { timeout: 600_000 }, async () => {
    const { spec, operations } = await getOperations(ctx.api);
    expect(operations.length).toBeGreaterThan(20);
    const user = await ctx.api.signUp();
    const admin = await signUpAdmin(ctx);
    const victim = await ctx.api.signUp();
    const png = Buffer.from(await makePng());
    const file = (await ctx.api.upload(user.token, "in.png", "image/png", png)).body.file.id as string;
    const job = (await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: file, width: 8 } }, user.token)).body.id as string;
    const upload = (await ctx.api.post("/uploads", { filename: "p.png", content_type: "image/png", size: png.byteLength }, user.token)).body.file_id as string;
    const ids: Ids = { file, job, upload, victim: victim.user_id };

    // Admin operations as an admin, so that their bodies are read; every other one as a plain user (or anonymously, if public).
    // Deleting comes last, so that the ids stay real for the others.
    const ordered = [...operations].sort((a, b) => Number(a.method === "DELETE") - Number(b.method === "DELETE"));
    const cases = ordered.flatMap((o) => casesFor(spec, o, ids, o.path.startsWith("/api/v1/admin/") ? admin.token : user.token));
    cases.push(...multipartCases(user.token, png));
    const failures: string[] = [];
    for (const c of cases) {
      const problem = verdict(await send(c));
      if (problem) failures.push(`${c.label}: ${problem}`);
    }
    expect(cases.length).toBeGreaterThan(1000);
    expect(failures, `seed ${SEED}`).toEqual([]);

    expect((await ctx.api.request("GET", "/health")).status).toBe(200);
    expect(deadApps(ctx.stack)).toEqual([]);
  });

  it("never answers a malformed request with a 500: every documented operation, fed garbage, says 4xx in the envelope", { timeout: 120_000 }, async () => {
    const user = await ctx.api.signUp();
    const spec = (await ctx.api.request("GET", "/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
    const garbage: Array<{ body?: string; type?: string }> = [
      // (GET requests get the garbage in their path and query only: fetch sends no GET body.)
      { body: "{not json", type: "application/json" },
      { body: JSON.stringify({ unexpected: [1, { deep: null }], limit: "lots" }), type: "application/json" },
      { body: JSON.stringify("just a string"), type: "application/json" },
      { body: "a=1&b=2", type: "application/x-www-form-urlencoded" },
      { body: "\u0000\u0001binary", type: "application/octet-stream" },
      { body: "--x\r\nnot really multipart", type: "multipart/form-data; boundary=x" },
      {},
    ];
    const ids = ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00", "' or 1=1 --"];
    const failures: string[] = [];
    for (const [template, ops] of Object.entries(spec.paths)) {
      for (const method of Object.keys(ops)) {
        for (const id of ids) {
          const path = `${template.replace(/\{[^}]+\}/g, encodeURIComponent(id))}?limit=-5&offset=abc&status=nope`;
          for (const g of method === "get" ? [{}] : garbage) {
            const res = await ctx.api.request(method.toUpperCase(), path, { token: user.token, body: g.body, headers: g.type ? { "content-type": g.type } : {} });
            const enveloped = res.status < 400 || typeof res.body?.error?.code === "string";
            if (res.status >= 500 || !enveloped) failures.push(`${method.toUpperCase()} ${path} [${g.type ?? "no body"}] → ${res.status} ${JSON.stringify(res.body).slice(0, 120)}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it("survives garbage on the WebSockets: an error message or a policy close, and the gateway keeps serving", async () => {
    const user = await ctx.api.signUp();
    const wsUrl = ctx.stack.url.replace(/^http/, "ws");
    for (const path of ["/ws", `/ws/jobs/${randomUUID()}`]) {
      const ws = new WebSocket(`${wsUrl}${path}`, { headers: { authorization: `Bearer ${user.token}` } });
      const got: string[] = [];
      ws.on("message", (d) => got.push(d.toString()));
      const closed = new Promise<number>((resolve) => ws.once("close", resolve));
      await new Promise((r) => ws.once("open", r));
      for (const frame of ["not json", "null", "[]", JSON.stringify({ type: "subscribe_job", job_id: "' or 1=1 --" }), JSON.stringify({ type: "subscribe_job", job_id: randomUUID(), since: -1 }), JSON.stringify({ type: "ping", extra: "x".repeat(MB) })]) {
        if (ws.readyState === ws.OPEN) ws.send(frame);
      }
      if (ws.readyState === ws.OPEN) ws.send(rng.bytes(4096));
      await new Promise((r) => setTimeout(r, 500));
      ws.close();
      const code = await closed;
      expect([1000, 1005, 1006, 1008, 1009], `${path} closed with ${code}`).toContain(code);
      for (const m of got) expect(JSON.parse(m), path).toHaveProperty("type");
    }
    expect((await ctx.api.request("GET", "/health/live")).status).toBe(200);
    expect(deadApps(ctx.stack)).toEqual([]);
  });
});
