import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makePng } from "@cutroom/e2e/media";
import { useStack } from "@cutroom/e2e/stack";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";

// The real processes, and the CLI run as a user runs it: a child process, its stdout, stderr and exit status.
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"] });
const bin = join(import.meta.dirname, "..", "bin", "cutroom.mjs");
const password = "correct horse battery";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed (with --json). */
  json: any;
  /** stderr's error envelope (with --json). */
  error: any;
}

/** Runs `cutroom <args>` with its config in `home`, against the test stack. */
function cutroom(home: string, args: string[], opts: { stdin?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, XDG_CONFIG_HOME: home, CUTROOM_API: ctx.stack.url, DATABASE_URL: ctx.stack.databaseUrl, LOG_LEVEL: "warn" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.stdin.end(opts.stdin ?? "");
    child.on("error", reject);
    child.on("close", (code) => {
      const parse = (s: string) => {
        try {
          return JSON.parse(s);
        } catch {
          return undefined;
        }
      };
      resolve({ code, stdout, stderr, json: parse(stdout), error: parse(stderr)?.error });
    });
  });
}

/** A fresh account, signed in through `cutroom login` in a config folder of its own. */
async function user() {
  const home = await mkdtemp(join(tmpdir(), "cutroom-cli-"));
  const u = await ctx.api.signUp(`cli-${randomUUID()}@e2e.cutroom.test`, password);
  const login = await cutroom(home, ["login", "--email", u.email, "--password", password, "--json"]);
  expect(login.code, login.stderr).toBe(0);
  return { ...u, home };
}

let admin: { home: string; email: string };
beforeAll(async () => {
  // An operator makes the first admin in the database, then signs in with it.
  const home = await mkdtemp(join(tmpdir(), "cutroom-cli-admin-"));
  const email = `cli-admin-${randomUUID()}@e2e.cutroom.test`;
  const made = await cutroom(home, ["create-admin", "--email", email, "--password", password, "--json"]);
  expect(made.code, made.stderr).toBe(0);
  expect(made.json).toMatchObject({ action: "created", email, credits: 100 });
  expect((await cutroom(home, ["login", "--email", email, "--password", password])).code).toBe(0);
  admin = { home, email };
});

describe("sessions", () => {
  it("signs in with the password on stdin, keeps the tokens in a 0600 file, says who is signed in, and signs out", async () => {
    const home = await mkdtemp(join(tmpdir(), "cutroom-cli-"));
    const u = await ctx.api.signUp(`cli-${randomUUID()}@e2e.cutroom.test`, password);
    const login = await cutroom(home, ["login", "--email", u.email], { stdin: `${password}\n` });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toMatch(new RegExp(`signed in to .* as ${u.email} \\(user, free tier, 100 credits\\)`));
    const config = join(home, "cutroom", "config.json");
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(config, "utf8")).sessions[ctx.stack.url]).toMatchObject({ email: u.email, refresh_token: expect.any(String) });

    const me = await cutroom(home, ["whoami", "--json"]);
    expect(me.json).toMatchObject({ email: u.email, role: "user", tier: "free", credits: 100 });
    expect((await cutroom(home, ["whoami"])).stdout).toContain(`${u.email} (user id ${u.user_id})`);

    expect((await cutroom(home, ["logout"])).code).toBe(0);
    const after = await cutroom(home, ["whoami", "--json"]);
    expect(after.code).toBe(1);
    expect(after.error).toMatchObject({ code: "NOT_SIGNED_IN", message: expect.stringContaining("cutroom login") });
  });

  it("refreshes an expired access token through the SDK and saves the new pair", async () => {
    const u = await user();
    const config = join(u.home, "cutroom", "config.json");
    const saved = JSON.parse(await readFile(config, "utf8"));
    saved.sessions[ctx.stack.url].access_token = "expired.access.token";
    await writeFile(config, JSON.stringify(saved));
    const me = await cutroom(u.home, ["whoami", "--json"]);
    expect(me.code, me.stderr).toBe(0);
    const now = JSON.parse(await readFile(config, "utf8")).sessions[ctx.stack.url];
    expect(now.access_token).not.toBe("expired.access.token");
    expect(now.refresh_token).not.toBe(saved.sessions[ctx.stack.url].refresh_token);
    expect((await cutroom(u.home, ["whoami", "--json"])).code).toBe(0);
  });

  it("refuses a wrong password with the API's envelope and exit status 1", async () => {
    const home = await mkdtemp(join(tmpdir(), "cutroom-cli-"));
    const u = await ctx.api.signUp(`cli-${randomUUID()}@e2e.cutroom.test`, password);
    const wrong = await cutroom(home, ["login", "--email", u.email, "--password", "not the password", "--json"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toBe("");
    expect(wrong.error).toMatchObject({ code: "INVALID_CREDENTIALS", request_id: expect.any(String) });
  });
});

describe("files and jobs", () => {
  it("uploads, runs image.thumbnail following it to success, and downloads the WebP by job and by file", async () => {
    const u = await user();
    const png = join(u.home, "photo.png");
    await writeFile(png, await makePng(320, 240));

    const up = await cutroom(u.home, ["upload", png]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^uploaded photo\.png: file [0-9a-f-]{36} \(image, image\/png, /);
    // Not a terminal: progress as plain lines, never a bar's carriage returns.
    expect(up.stderr).toMatch(/photo\.png .* 100%/);
    expect(up.stderr).not.toContain("\r");

    const run = await cutroom(u.home, ["run", "image.thumbnail", "--file", png, "--input", '{"width": 64, "height": 64}']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/queued, 1 credits reserved/);
    expect(run.stderr).toMatch(/running: attempt 1/);
    expect(run.stderr).toMatch(/succeeded/);
    const jobId = /^job ([0-9a-f-]{36}) {2}image\.thumbnail {2}succeeded {2}100%/m.exec(run.stdout)?.[1];
    expect(jobId, run.stdout).toBeDefined();

    const again = await cutroom(u.home, ["run", "image.thumbnail", "--file", png, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json).toMatchObject({ type: "image.thumbnail", status: "succeeded", credits: { amount: 1, state: "captured" } });
    expect(again.stderr).toBe("");

    const out = join(u.home, "out");
    const byJob = await cutroom(u.home, ["download", jobId!, "-o", out, "--json"]);
    expect(byJob.code, byJob.stderr).toBe(0);
    const [file] = byJob.json.files;
    const bytes = await readFile(file.path);
    expect(bytes.toString("latin1", 0, 4)).toBe("RIFF");
    expect(bytes.toString("latin1", 8, 12)).toBe("WEBP");
    expect(await sharp(bytes).metadata()).toMatchObject({ format: "webp", width: 64, height: 64 });

    const byFile = await cutroom(u.home, ["download", file.file_id, "-o", join(u.home, "same.webp")]);
    expect(byFile.code, byFile.stderr).toBe(0);
    expect(await readFile(join(u.home, "same.webp"))).toEqual(bytes);

    const listed = await cutroom(u.home, ["jobs", "list", "--json"]);
    expect(listed.json).toMatchObject({ total: 2 });
    const events = await cutroom(u.home, ["jobs", "events", jobId!, "--json"]);
    expect(events.json.data[0]).toMatchObject({ seq: 1, type: "status", status: "queued" });
    expect(events.json.data.at(-1)).toMatchObject({ type: "result", status: "succeeded" });
    expect((await cutroom(u.home, ["whoami", "--json"])).json.credits).toBe(98);
  });

  it("says clearly what is wrong with bad input, with exit status 2 for the command line and 1 for the API's refusal", async () => {
    const u = await user();
    const notJson = await cutroom(u.home, ["run", "image.thumbnail", "--input", "{width: 64}", "--json"]);
    expect(notJson.code).toBe(2);
    expect(notJson.error).toMatchObject({ code: "USAGE", message: expect.stringMatching(/^--input is not JSON/) });

    const refused = await cutroom(u.home, ["run", "image.thumbnail", "--input", '{"file_id": "not-a-uuid"}', "--json"]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.error).toMatchObject({ code: "INVALID_INPUT", message: "input is not valid for image.thumbnail", details: expect.any(Object), request_id: expect.any(String) });

    const human = await cutroom(u.home, ["run", "image.nope", "--input", "{}"]);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^error: unknown job type image\.nope \(INVALID_INPUT, HTTP 422\)\n {2}details: .*known_types/);

    const missing = await cutroom(u.home, ["upload", join(u.home, "nothing-here.png"), "--json"]);
    expect(missing.code).toBe(2);
    expect(missing.error).toMatchObject({ code: "USAGE", message: expect.stringContaining("no file at") });

    expect((await cutroom(u.home, ["jobs", "get"])).stderr).toMatch(/jobs get takes <job-id>/);
    expect((await cutroom(u.home, ["jobs", "list", "--email", "x"])).stderr).toMatch(/jobs list takes no --email/);
    const unreachable = await cutroom(u.home, ["whoami", "--api", "http://127.0.0.1:9", "--json"]);
    expect(unreachable.error).toMatchObject({ code: "NOT_SIGNED_IN" });
  });
});

describe("operators", () => {
  it("grants credits and sets a tier by email or user id, for admins only", async () => {
    const u = await user();
    const grant = await cutroom(admin.home, ["credits", "grant", u.email, "25", "--json"]);
    expect(grant.code, grant.stderr).toBe(0);
    expect(grant.json).toMatchObject({ user_id: u.user_id, granted: 25, credits: 125 });
    expect((await cutroom(u.home, ["whoami", "--json"])).json.credits).toBe(125);

    const tier = await cutroom(admin.home, ["tier", "set", u.user_id, "pro"]);
    expect(tier.code, tier.stderr).toBe(0);
    expect(tier.stdout).toContain(`${u.email} is on the pro tier now`);
    // The user's old access token is revoked; the SDK refreshes it and the new one says pro.
    expect((await cutroom(u.home, ["whoami", "--json"])).json).toMatchObject({ tier: "pro", credits: 125 });

    const badTier = await cutroom(admin.home, ["tier", "set", u.email, "gold", "--json"]);
    expect(badTier).toMatchObject({ code: 2, error: { code: "USAGE", message: "unknown tier gold: one of free, pro, enterprise" } });
    const nobody = await cutroom(admin.home, ["credits", "grant", "nobody@e2e.cutroom.test", "5", "--json"]);
    expect(nobody).toMatchObject({ code: 1, error: { code: "NOT_FOUND" } });

    const notAdmin = await cutroom(u.home, ["credits", "grant", u.email, "1000", "--json"]);
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.error).toMatchObject({ code: "FORBIDDEN", message: expect.stringContaining("is not an admin") });
  });

  it("shows queue depths and worker processes, and answers drain clearly (not available on a server without the worker registry)", async () => {
    const queues = await cutroom(admin.home, ["queues", "--json"]);
    expect(queues.code, queues.stderr).toBe(0);
    expect(queues.json.data.map((q: { queue: string }) => q.queue)).toEqual(["image", "video", "audio"]);
    const image = queues.json.data[0];
    expect(image).toMatchObject({ queued: expect.any(Number), held: expect.any(Number), running: expect.any(Number), pending: expect.any(Number), ack_pending: expect.any(Number) });
    // No video worker ran in this stack: its consumer does not exist.
    expect(queues.json.data[1]).toMatchObject({ queued: 0, running: 0, pending: null });
    expect((await cutroom(admin.home, ["queues"])).stdout).toMatch(/^QUEUE +QUEUED +HELD +RUNNING +PENDING +ACK PENDING\nimage +\d+ +\d+ +\d+ +\d+ +\d+/);

    // The worker registry's list (GET /workers) where the server has it, else /health's instances; the image worker shows up once it has reported.
    let workers: Run | undefined;
    for (let i = 0; i < 40; i++) {
      workers = await cutroom(admin.home, ["workers", "list", "--json"]);
      expect(workers.code, workers.stderr).toBe(0);
      if ((workers.json.workers ?? workers.json.data).length > 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const registry = workers!.json.workers !== undefined;
    expect(workers!.json.workers ?? workers!.json.data).toEqual([expect.objectContaining({ kind: "worker-image", pid: expect.any(Number) })]);
    expect((await cutroom(admin.home, ["workers", "list"])).stdout).toMatch(/worker-image/);

    const drain = await cutroom(admin.home, ["workers", "drain", "no-such-worker", "--json"]);
    expect(drain.code).toBe(1);
    if (registry) expect(drain.error).toMatchObject({ code: "NOT_FOUND" });
    else expect(drain.error).toMatchObject({ code: "NOT_AVAILABLE", message: expect.stringContaining("workers drain is not available on this server") });
    if (!registry) return;
    // The image worker drained, then resumed: the registry's status follows each command.
    const id = workers!.json.workers[0].id as string;
    const drained = await cutroom(admin.home, ["workers", "drain", id, "--json"]);
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.json).toMatchObject({ id, status: "draining" });
    const resumed = await cutroom(admin.home, ["workers", "resume", id]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`^resumed worker ${id}`));
    const after = await cutroom(admin.home, ["workers", "list", "--json"]);
    expect(after.json.workers.find((w: { id: string }) => w.id === id).status).not.toBe("draining");
  });

  it("requeues a failed job once: a new job reserves its credits again, a second ask answers the same job, and only a failed job may be requeued", async () => {
    const u = await user();
    const png = await makePng(64, 48);
    const path = join(u.home, "broken.png");
    await writeFile(path, png);
    const up = await cutroom(u.home, ["upload", path, "--json"]);
    expect(up.code, up.stderr).toBe(0);
    // The stored bytes go bad behind the service's back: the worker cannot read them, and the job fails.
    const stored = await findStored(ctx.stack.storageDir, png);
    await writeFile(stored, Buffer.alloc(png.length, 7));
    const failed = await cutroom(u.home, ["run", "image.thumbnail", "--input", JSON.stringify({ file_id: up.json.id }), "--json"]);
    expect(failed.code).toBe(3);
    expect(failed.json).toMatchObject({ status: "failed", credits: { amount: 1, state: "released" } });
    expect(failed.error).toMatchObject({ code: failed.json.error.code, details: { job_id: failed.json.id, status: "failed" } });
    expect((await cutroom(u.home, ["whoami", "--json"])).json.credits).toBe(100);

    const events = await cutroom(u.home, ["jobs", "events", failed.json.id, "--json"]);
    expect(events.json.data.at(-1)).toMatchObject({ type: "error", status: "failed" });

    await writeFile(stored, png);
    // Two admins at once: one new job, one reservation.
    const both = await Promise.all([1, 2].map(() => cutroom(admin.home, ["jobs", "requeue", failed.json.id, "--json"])));
    for (const r of both) expect(r.code, r.stderr).toBe(0);
    const requeued = both.find((r) => r.json.created)!;
    expect(both.map((r) => r.json.created).sort()).toEqual([false, true]);
    expect(requeued.json).toMatchObject({ requeued_from: failed.json.id, job: { type: "image.thumbnail", input: { file_id: up.json.id }, credits: { amount: 1 } } });
    const newId = requeued.json.job.id;
    expect(newId).not.toBe(failed.json.id);
    expect(both.map((r) => r.json.job.id)).toEqual([newId, newId]);

    const twice = await cutroom(admin.home, ["jobs", "requeue", failed.json.id, "--json"]);
    expect(twice.json).toMatchObject({ created: false, job: { id: newId } });

    // The owner follows the new job to its end: its credits were reserved once, and captured.
    const followed = await cutroom(u.home, ["jobs", "events", newId, "--json"]);
    expect(followed.json.data.at(-1)).toMatchObject({ type: "result", status: "succeeded" });
    expect((await cutroom(u.home, ["jobs", "get", newId, "--json"])).json).toMatchObject({ status: "succeeded", credits: { amount: 1, state: "captured" } });
    expect((await cutroom(u.home, ["whoami", "--json"])).json.credits).toBe(99);

    const notFailed = await cutroom(admin.home, ["jobs", "requeue", newId, "--json"]);
    expect(notFailed.code).toBe(1);
    expect(notFailed.error).toMatchObject({ code: "INVALID_STATE", message: "only a failed job can be requeued; this one is succeeded" });
    const byUser = await cutroom(u.home, ["jobs", "requeue", failed.json.id, "--json"]);
    expect(byUser.error).toMatchObject({ code: "FORBIDDEN" });
    expect((await cutroom(u.home, ["whoami", "--json"])).json.credits).toBe(99);
  });

  it("applies the migrations (a no-op on a migrated database), and promote reports an admin already", async () => {
    const migrate = await cutroom(admin.home, ["migrate", "--json"]);
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.json).toMatchObject({ migrated: true });
    const promote = await cutroom(admin.home, ["promote", "--email", admin.email]);
    expect(promote.stdout).toMatch(new RegExp(`^already an admin: ${admin.email}`));
    const noAccount = await cutroom(admin.home, ["promote", "--email", `nobody-${randomUUID()}@e2e.cutroom.test`, "--json"]);
    expect(noAccount.code).toBe(1);
    expect(noAccount.error.message).toMatch(/no account with the email/);
  });
});

/** The file under `dir` holding exactly `bytes` (storage's fs driver keeps each upload as one file). */
async function findStored(dir: string, bytes: Uint8Array): Promise<string> {
  const found: string[] = [];
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile() && (await stat(p)).size === bytes.length && Buffer.from(bytes).equals(await readFile(p))) found.push(p);
    }
  };
  await walk(dir);
  if (found.length !== 1) throw new Error(`expected one stored copy of the upload, found ${found.length}`);
  return found[0]!;
}
