import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNatsLogins, freePort, startNats, type NatsLogins } from "@cutroom/devstack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { connectNats, ensureStreams, waitForStreams, type NatsConnection } from "./nats.ts";

const log = createLogger("test", "silent");
let dir: string;
let server: Awaited<ReturnType<typeof startNats>>;
let logins: NatsLogins;
const conns: NatsConnection[] = [];

// A server of this file's own, with the stack's users and permissions, started empty (no streams).
beforeAll(async () => {
  dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "nats-auth-"));
  logins = createNatsLogins();
  server = await startNats({ storeDir: join(dir, "nats"), port: await freePort(), logins });
});
afterAll(async () => {
  await Promise.allSettled(conns.map((c) => c.close()));
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function connectAs(app: keyof NatsLogins) {
  const nc = await connectNats({ NATS_URL: server.url, NATS_USER: logins[app].user, NATS_PASSWORD: logins[app].password }, app, log);
  conns.push(nc);
  return nc;
}

describe("connectNats with the stack's users", () => {
  it("gets a reply from another app across two users' permissions", async () => {
    const billing = await connectAs("billing-service");
    billing.subscribe("svc.billing.*", { callback: (_err, msg) => void msg.respond(JSON.stringify({ ok: true, data: msg.subject })) });
    await billing.flush();
    const job = await connectAs("job-service");
    const reply = await job.request("svc.billing.rate", "{}", { timeout: 2000 });
    expect(reply.json()).toEqual({ ok: true, data: "svc.billing.rate" });
  });

  it("refuses a user without its password before reaching the server", async () => {
    await expect(connectNats({ NATS_URL: server.url, NATS_USER: "gateway", NATS_PASSWORD: undefined }, "gateway", log)).rejects.toThrow(/NATS_USER and NATS_PASSWORD/);
  });

  it("lets a worker wait for the streams job-service makes, which the worker may not make itself", async () => {
    const worker = await connectAs("worker-video");
    await expect(ensureStreams(worker)).rejects.toThrow(/permissions violation/i);
    let ready = false;
    const waiting = waitForStreams(worker, log, { everyMs: 20 }).then(() => (ready = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(ready).toBe(false);
    await ensureStreams(await connectAs("job-service"));
    await waiting;
    expect(ready).toBe(true);
  });
});
