import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { streams } from "@cutroom/contracts";
import { createNatsLogins, freePort, portOpen, startNats, stopChild, waitFor, type NatsLogins } from "@cutroom/devstack";
import { jetstream, jetstreamManager, RetentionPolicy } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { connectNats, ensureStreams, keepStreams, waitForStreams, type NatsConnection } from "./nats.ts";
import { createRpcClient, serveRpc } from "./rpc.ts";

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
    const bare = billing.subscribe("svc.billing.*", { callback: (_err, msg) => void msg.respond(JSON.stringify({ ok: true, data: msg.subject })) });
    await billing.flush();
    const job = await connectAs("job-service");
    const reply = await job.request("svc.billing.rate", "{}", { timeout: 2000 });
    expect(reply.json()).toEqual({ ok: true, data: "svc.billing.rate" });
    // Left subscribed, it would answer the next tests' billing calls too, with no envelope.
    bare.unsubscribe();
  });

  it("carries RPC calls through the caller's own inbox, and fails a call its user may not make at once, not at its timeout", async () => {
    const billing = await connectAs("billing-service");
    const server = serveRpc(billing, "billing", { health: async () => ({ status: "up", service: "billing", checks: {} }) } as never, log);
    await billing.flush();
    const client = createRpcClient(await connectAs("gateway"), { timeoutMs: 60_000 });
    await expect(client.call("billing", "health", {})).resolves.toMatchObject({ status: "up" });
    // No worker may grant credits: the server refuses the publish, and the caller hears of it from the server.
    const worker = createRpcClient(await connectAs("worker-video"), { timeoutMs: 60_000 });
    await expect(worker.call("billing", "grant", { user_id: "00000000-0000-4000-8000-000000000000", amount: 1 } as never)).rejects.toMatchObject({
      code: "SERVICE_UNAVAILABLE",
      details: { reason: "unreachable" },
    });
    await server.drain();
  });

  it("sends what the callbacks of one event-loop turn publish in one socket write, each call still answered", async () => {
    const storage = await connectAs("storage-service");
    const server = serveRpc(storage, "storage", { health: async () => ({ status: "up", service: "storage", checks: {} }) } as never, log);
    await storage.flush();
    const gateway = await connectAs("gateway");
    const client = createRpcClient(gateway, { timeoutMs: 60_000 });
    const socket = (gateway as unknown as { protocol: { transport: { socket: { write: (...args: unknown[]) => boolean } } } }).protocol.transport.socket;
    let writes = 0;
    const write = socket.write.bind(socket);
    socket.write = (...args: unknown[]) => {
      writes++;
      return write(...args);
    };
    // Twenty timers due at once run in one turn, each its own callback, as twenty HTTP requests read together do.
    const calls = await new Promise<Promise<unknown>[]>((resolve) => {
      const started: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) setTimeout(() => started.push(client.call("storage", "health", {})) === 20 && resolve(started), 0);
    });
    await expect(Promise.all(calls)).resolves.toHaveLength(20);
    socket.write = write;
    // One write for the twenty (and the reply subscription the first call opens), not one each.
    expect(writes).toBeLessThan(3);
    await server.drain();
  });

  it("still sends what was published right before the connection is closed", async () => {
    const listener = await connectAs("worker-image");
    const got = new Promise<string>((resolve) => listener.subscribe("jobs.cancel.*", { callback: (_err, msg) => resolve(msg.subject) }));
    await listener.flush();
    const jobService = await connectAs("job-service");
    jobService.publish("jobs.cancel.last-words", "{}");
    await jobService.close();
    await expect(got).resolves.toBe("jobs.cancel.last-words");
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

/** A nats-server of a test's own, as `args` say (no -js: a server whose JetStream is not up). */
async function spawnNats(args: string[], port: number) {
  const child = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), ...args], { stdio: "ignore" });
  await waitFor("nats-server", async () => portOpen(port), 10_000, 20);
  return { url: `nats://127.0.0.1:${port}`, stop: () => stopChild(child, "SIGTERM", 2000) };
}

/** Log lines a logger wrote, parsed. */
function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger("test", "warn", { write: (l: string) => void lines.push(JSON.parse(l)) }) };
}

describe("the JetStream streams", () => {
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    await Promise.allSettled(stops.map((s) => s()));
  });

  it("keeps an R3 stream at 3 replicas when a process set to 1 starts, and says so", { timeout: 60_000 }, async () => {
    // A real 3-node JetStream cluster: a single server cannot hold R3, and lowering is what went wrong.
    const nodeDir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "nats-cluster-"));
    stops.push(async () => rmSync(nodeDir, { recursive: true, force: true }));
    const routes = [await freePort(), await freePort(), await freePort()];
    const ports = [await freePort(), await freePort(), await freePort()];
    const nodes = await Promise.all(
      ports.map((port, i) =>
        spawnNats(["-js", "-sd", join(nodeDir, `n${i}`), "--server_name", `n${i}`, "--cluster_name", "replicas-test", "--cluster", `nats://127.0.0.1:${routes[i]}`, "--routes", routes.map((r) => `nats://127.0.0.1:${r}`).join(",")], port),
      ),
    );
    for (const n of nodes) stops.unshift(n.stop);
    const nc = await connectNats(nodes.map((n) => n.url).join(","), "test", log);
    conns.push(nc);
    const jsm = await waitFor("the cluster's JetStream", () => jetstreamManager(nc), 30_000, 200);
    // Streams an earlier release made at R3; until the cluster has its leader and every peer, adding one fails.
    for (const { name, subjects } of [streams.jobs, streams.jobEvents]) {
      const retention = name === streams.jobs.name ? RetentionPolicy.Workqueue : RetentionPolicy.Limits;
      await waitFor(`R3 stream ${name}`, () => jsm.streams.add({ name, subjects: [...subjects], retention, num_replicas: 3 }), 30_000, 200);
    }

    const { lines, log: warnings } = capturedLog();
    await ensureStreams(nc, { replicas: 1, log: warnings });
    for (const name of [streams.jobs.name, streams.jobEvents.name]) {
      expect((await jsm.streams.info(name)).config.num_replicas).toBe(3);
      expect(lines).toContainEqual(expect.objectContaining({ stream: name, replicas: 3, NATS_STREAM_REPLICAS: 1, msg: expect.stringMatching(/3 replicas .* says 1/) }));
    }
    // Its limits are still brought up to date: only the replicas are left alone.
    expect((await jsm.streams.info(streams.jobEvents.name)).config.max_age).toBe(24 * 60 * 60 * 1_000_000_000);
  });

  it("makes a deleted stream again once it has stayed missing for the settle, and the new stream delivers what it stores", { timeout: 30_000 }, async () => {
    // nats-server 2.9 removes a deleted stream's directory after it stops listing the stream: one made
    // again at once can lose its first block to that removal and never deliver what it acked.
    const own = await startNats({ storeDir: join(dir, "keep"), port: await freePort() });
    stops.push(own.stop);
    const nc = await connectNats(own.url, "test", log);
    conns.push(nc);
    await ensureStreams(nc);
    const jsm = await jetstreamManager(nc);
    const { lines, log: warnings } = capturedLog();
    const keeper = keepStreams(nc, { everyMs: 50, settleMs: 700, log: warnings });
    stops.push(keeper.stop);

    await jsm.streams.delete(streams.jobs.name);
    const deletedAt = Date.now();
    await new Promise((r) => setTimeout(r, 400));
    // Judged by when the answer came, so a stalled test process cannot fail it: an answer within the
    // settle (less the delete's own round trip) must still say "not found".
    const found = await jsm.streams.info(streams.jobs.name).then(
      () => true,
      (e: Error) => (/not found/.test(e.message) ? false : Promise.reject(e)),
    );
    if (Date.now() - deletedAt < 650) expect(found).toBe(false);
    // The keeper says so once its pass is over, which can be after the stream shows again.
    const said = (l: Record<string, unknown>) => l.msg === "re-created JetStream streams the broker had lost";
    await waitFor("JOBS made again", async () => lines.some(said), 5_000, 25);
    expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(650);
    expect(lines.filter(said)).toEqual([expect.objectContaining({ streams: [streams.jobs.name] })]);
    expect((await jsm.streams.info(streams.jobs.name)).config.name).toBe(streams.jobs.name);

    const subject = `${streams.jobs.subjects[0]!.replace(/>$/, "")}test.probe`;
    const ack = await jetstream(nc).publish(subject, "after");
    expect((await jsm.streams.getMessage(streams.jobs.name, { seq: ack.seq }))?.string()).toBe("after");
  });

  it("waits for JetStream to come up, creating the streams then, instead of failing", { timeout: 30_000 }, async () => {
    const port = await freePort();
    const withoutJs = await spawnNats([], port);
    const nc = await connectNats(withoutJs.url, "test", log);
    conns.push(nc);
    const { lines, log: warnings } = capturedLog();
    let created = false;
    let found = false;
    const creating = ensureStreams(nc, { log: warnings, retry: { firstMs: 50, maxMs: 200 } }).then(() => (created = true));
    const waiting = waitForStreams(nc, warnings, { everyMs: 50, maxMs: 200 }).then(() => (found = true));
    await new Promise((r) => setTimeout(r, 500));
    expect({ created, found }).toEqual({ created: false, found: false });
    expect(lines.some((l) => /trying again/.test(String(l.msg)))).toBe(true);

    await withoutJs.stop();
    const withJs = await startNats({ storeDir: join(dir, "late-js"), port });
    stops.push(withJs.stop);
    await Promise.all([creating, waiting]);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(streams.jobs.name)).config.num_replicas).toBe(1);
  });
});
