import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { portFree, portOpen, stopChild } from "@cutroom/devstack";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { createClient } from "./client.ts";
import { makePng } from "./media.ts";

const root = join(import.meta.dirname, "..", "..", "..");

/**
 * `npm start` as a user runs it: npm itself (so a signal to npm's process must reach the stack: npm
 * passes it to its child only, hence the script's `exec`), only the given settings, none of npm test's servers.
 */
function npmStart(env: Record<string, string>) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(DATABASE_URL|NATS_URL|S3_|STORAGE_|PORT|HOST|CUTROOM_|LOG_LEVEL|REPLICATE_|MODEL_)/.test(k)),
  ) as Record<string, string>;
  const child = spawn("npm", ["start"], { cwd: root, env: { ...clean, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1)));
  const up = new Promise<string>((resolve, reject) => {
    const check = setInterval(() => {
      const m = /Cutroom is up: (\S+)/.exec(output);
      if (m) (clearInterval(check), resolve(m[1]!));
    }, 100);
    void exited.then((code) => (clearInterval(check), reject(new Error(`npm start exited with ${code}:\n${output}`))));
  });
  up.catch(() => {});
  return { child, up, exited, output: () => output };
}

/** A PORT whose next four ports (storage, nats, postgres, model emulator) are free too. */
async function freeBase(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const all = await Promise.all([0, 1, 2, 3, 4].map((d) => portFree(base + d)));
    if (all.every(Boolean)) return base;
  }
  throw new Error("no five free ports in a row");
}

const running: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(running.map((c) => stopChild(c, "SIGTERM", 30_000)));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("npm start", () => {
  it("on a non-default PORT runs a job end to end, keeps signed URLs valid across a restart, and refuses a taken port by name", async () => {
    const port = await freeBase();
    const dataDir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "npm-start-"));
    chmodSync(dataDir, 0o755); // Postgres runs as its own user when we are root
    dirs.push(dataDir);
    let metricsPort = port + 5;
    while (!(await portFree(metricsPort))) metricsPort++;
    const first = npmStart({ PORT: String(port), CUTROOM_DATA_DIR: dataDir, METRICS_PORT: String(metricsPort) });
    running.push(first.child);
    const url = await first.up;
    expect(url).toBe(`http://127.0.0.1:${port}`);
    // Without REPLICATE_API_TOKEN the emulator serves the models, on PORT+4, and the banner says so.
    expect(first.output()).toContain(`models: emulator (synthetic outputs) at http://127.0.0.1:${port + 4}`);

    const api = createClient(url);
    const u = await api.signUp();
    const form = new FormData();
    form.append("file", new Blob([await makePng(200, 100)], { type: "image/png" }), "photo.png");
    const upload = await api.request("POST", "/api/v1/files", { token: u.token, body: form });
    expect(upload.status, JSON.stringify(upload.body)).toBe(201);
    const job = await api.post("/jobs", { type: "image.resize", input: { file_id: upload.body.file.id, width: 50, height: 25, fit: "fill", format: "png" } }, u.token);
    expect(job.status, JSON.stringify(job.body)).toBe(202);
    let final: any;
    for (let i = 0; i < 300; i++) {
      final = (await api.get(`/jobs/${job.body.id}`, u.token)).body;
      if (["succeeded", "failed", "canceled"].includes(final.status)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(final.status, JSON.stringify(final)).toBe("succeeded");
    const link = await api.get(`/files/${final.result.files[0].file_id}/download-url`, u.token);
    expect(link.body.url.startsWith(`${url}/storage/`), link.body.url).toBe(true);
    const meta = await sharp(Buffer.from(await (await fetch(link.body.url)).arrayBuffer())).metadata();
    expect([meta.width, meta.height]).toEqual([50, 25]);

    // METRICS_PORT is the gateway's; job-service serves its own on the port its log names, with the job counted.
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
    const jobServiceLog = readFileSync(join(dataDir, "logs", "job-service.log"), "utf8");
    const jobMetricsPort = /"port":(\d+)[^\n]*"metrics listener up"/.exec(jobServiceLog)?.[1];
    expect(jobMetricsPort, "job-service logs its metrics port").toBeDefined();
    expect(Number(jobMetricsPort)).not.toBe(metricsPort);
    expect(await (await fetch(`http://127.0.0.1:${jobMetricsPort}/metrics`)).text()).toMatch(/^cutroom_jobs_created_total\{type="image\.resize"\} 1$/m);

    // Bound to localhost only: another address of this machine answers nothing.
    const external = Object.values(networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal);
    if (external) expect(await portOpen(port, external.address)).toBe(false);

    // A second stack whose NATS port is taken fails, naming the port and the variable.
    const otherPort = await freeBase();
    const second = npmStart({ PORT: String(otherPort), CUTROOM_NATS_PORT: String(port + 2), CUTROOM_DATA_DIR: join(dataDir, "second") });
    running.push(second.child);
    expect(await second.exited).not.toBe(0);
    expect(second.output()).toContain(`port ${port + 2} (CUTROOM_NATS_PORT) is in use`);

    // SIGTERM to npm's own process (as a supervisor sends it) stops the whole stack: every port is free again.
    await stopChild(first.child, "SIGTERM", 30_000);
    for (const p of [port, port + 1, port + 2, port + 3, port + 4]) expect(await portFree(p), `port ${p} still taken after SIGTERM to npm start`).toBe(true);
    // The URL signed before a restart still works after it (the signing secret lives in the data dir).
    const again = npmStart({ PORT: String(port), CUTROOM_DATA_DIR: dataDir });
    running.push(again.child);
    await again.up;
    const res = await fetch(link.body.url);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
  }, 240_000);
});
