import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { freePort, stopChild, waitFor } from "@cutroom/devstack";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { jobHelpers } from "./jobs.ts";
import { makePng } from "./media.ts";
import { useStack } from "./stack.ts";

/*
 * Workers reach storage at its own address, never through a gateway, and every caller of storage's
 * data plane (the gateway's proxy and uploads, workers' transfers) fails over between its replicas.
 * The stack names two storage replicas; the second is started by hand when a test needs it.
 */
const storageEnv: Record<string, string> = {};
const ports = { first: 0, second: 0 };
beforeAll(async () => {
  ports.first = await freePort();
  ports.second = await freePort();
  Object.assign(storageEnv, {
    STORAGE_PORT: String(ports.first),
    STORAGE_INTERNAL_URL: `http://127.0.0.1:${ports.first},http://127.0.0.1:${ports.second}`,
    // Every replica must check the others' tokens.
    STORAGE_URL_SECRET: randomBytes(32).toString("hex"),
  });
});
const ctx = useStack({ apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"], env: storageEnv });
const { upload, download, runToSuccess } = jobHelpers(ctx);

/** Calls a service over NATS as the gateway does, for `caller`; the reply's data, or throws its error. */
async function rpc(nc: NatsConnection, service: string, method: string, body: unknown, caller: unknown) {
  const msg = await nc.request(`svc.${service}.${method}`, JSON.stringify({ request_id: randomUUID(), caller, body }), { timeout: 10_000 });
  const reply = msg.json<{ ok: boolean; data?: any; error?: unknown }>();
  if (!reply.ok) throw new Error(`${service}.${method}: ${JSON.stringify(reply.error)}`);
  return reply.data;
}

/** A second storage-service process on the same database, NATS, folder and secret as the stack's, on its own port. */
async function startSecondStorage(): Promise<ChildProcess> {
  const { stack } = ctx;
  const login = stack.natsLogins!["storage-service"];
  const child = spawn(process.execPath, ["--import", "tsx", "src/server.ts"], {
    cwd: join(import.meta.dirname, "..", "..", "..", "apps", "storage-service"),
    env: {
      ...process.env,
      ...storageEnv,
      DATABASE_URL: stack.databaseUrl,
      NATS_URL: stack.natsUrl,
      NATS_USER: login.user,
      NATS_PASSWORD: login.password,
      STORAGE_DRIVER: "fs",
      STORAGE_DIR: stack.storageDir,
      STORAGE_PORT: String(ports.second),
      STORAGE_PUBLIC_URL: `${stack.url}/storage`,
    },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const log = createWriteStream(join(stack.dir, "logs", "storage-service-second.log"));
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  let ready = false;
  child.on("message", (m) => (ready ||= (m as { type?: string })?.type === "ready"));
  await waitFor("the second storage-service to be ready", async () => {
    if (child.exitCode !== null) throw new Error(`the second storage-service exited (${child.exitCode}); see its log`);
    return ready;
  }, 60_000, 50);
  return child;
}

describe("storage without a gateway in the way, and with a replica down", () => {
  it("runs a job that reads an input and writes an output while the gateway is down", async () => {
    const user = await ctx.api.signUp();
    const input = await upload(user.token, "in.png", "image/png", await makePng(320, 240));
    await ctx.stack.services.stop("gateway");
    let gatewayBack = false;
    const nc = await connect({ ...ctx.stack.natsOptions("gateway"), maxReconnectAttempts: 0 });
    try {
      const caller = { user_id: user.user_id, role: "user", tier: "free" };
      const body = { type: "image.thumbnail", input: { file_id: input.id, width: 64, height: 64, format: "png" } };
      const { job } = await rpc(nc, "job", "create", { body, idempotency_key: randomUUID() }, caller);
      const final = await waitFor("the job to end", async () => {
        const now = await rpc(nc, "job", "get", { job_id: job.id }, caller);
        return ["succeeded", "failed", "canceled"].includes(now.status) && now;
      }, 45_000, 250);
      expect(final.status, JSON.stringify(final.error)).toBe("succeeded");
      await ctx.stack.services.start("gateway");
      gatewayBack = true;
      const meta = await sharp(await download(user.token, final.result.files[0].file_id)).metadata();
      expect([meta.width, meta.height, meta.format]).toEqual([64, 64, "png"]);
    } finally {
      await nc.close();
      if (!gatewayBack) await ctx.stack.services.start("gateway");
    }
  }, 120_000);

  it("keeps downloads, uploads and workers' transfers going through the other storage replica when one dies", async () => {
    const second = await startSecondStorage();
    try {
      const user = await ctx.api.signUp();
      const png = await makePng(300, 200);
      const before = await upload(user.token, "before.png", "image/png", png);
      // The replica every URL names first dies as a crash would.
      await ctx.stack.services.stop("storage-service", "SIGKILL");
      // A request that NATS routed to the killed replica in the instant before it saw the connection
      // close is lost with it and answered 503 (the client retries); once NATS has seen the death,
      // which takes well under a second, every request reaches the replica still up. (A run of CI met
      // that instant once: a 503 for "timeout".)
      await waitFor("the storage replica still up to answer", async () => (await ctx.api.get(`/files/${before.id}/download-url`, user.token)).status === 200, 30_000, 100);

      // A file stored before: its signed URL goes through the gateway's proxy, to the replica still up.
      expect((await download(user.token, before.id)).equals(Buffer.from(png))).toBe(true);
      // A signed upload through the proxy, and a multipart one the gateway streams in itself.
      const after = await upload(user.token, "after.png", "image/png", png);
      expect((await download(user.token, after.id)).equals(Buffer.from(png))).toBe(true);
      const form = new FormData();
      form.append("file", new Blob([png], { type: "image/png" }), "multipart.png");
      const multipart = await fetch(`${ctx.stack.url}/api/v1/files`, { method: "POST", headers: { authorization: `Bearer ${user.token}` }, body: form });
      expect(multipart.status, await multipart.clone().text()).toBe(201);

      // A worker downloads its input and uploads its output, each at the replica still up.
      const final = await runToSuccess(user.token, "image.thumbnail", { file_id: before.id, width: 32, height: 32, format: "png" });
      const meta = await sharp(await download(user.token, final.result.files[0].file_id)).metadata();
      expect([meta.width, meta.height]).toEqual([32, 32]);
    } finally {
      await stopChild(second);
      await ctx.stack.services.start("storage-service");
    }
  }, 120_000);
});
