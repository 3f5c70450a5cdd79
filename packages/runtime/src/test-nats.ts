import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNats } from "@cutroom/devstack";
import { createLogger } from "./logger.ts";
import { connectNats, ensureStreams, type NatsConnection } from "./nats.ts";

/**
 * A nats-server -js of this test file's own, so files running in parallel never share subjects or
 * streams. Starts in tens of milliseconds. Lives here (subpath "./test-nats") so runtime's own
 * tests can use it; @cutroom/testing re-exports it as startTestNats.
 */
export async function startNatsForTest(): Promise<{ url: string; connect: () => Promise<NatsConnection>; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "nats-"));
  const server = await startNats({ storeDir: dir, port: await freePort() });
  const conns: NatsConnection[] = [];
  const connect = async () => {
    const nc = await connectNats(server.url, "test", createLogger("test", "silent"));
    conns.push(nc);
    return nc;
  };
  await ensureStreams(await connect());
  return {
    url: server.url,
    connect,
    stop: async () => {
      await Promise.allSettled(conns.map((c) => c.close()));
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
