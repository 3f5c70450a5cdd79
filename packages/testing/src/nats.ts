import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNats } from "@cutroom/devstack";
import { connectNats, createLogger, ensureStreams, type NatsConnection } from "@cutroom/runtime";

/**
 * A nats-server -js of this test file's own, so files running in parallel never share
 * subjects or streams. Starts in tens of milliseconds.
 */
export async function startTestNats(): Promise<{ url: string; connect: () => Promise<NatsConnection>; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "nats-"));
  const server = await startNats({ storeDir: dir, port: await freePort() });
  const conns: NatsConnection[] = [];
  const first = await connectNats(server.url, "test", createLogger("test", "silent"));
  await ensureStreams(first);
  conns.push(first);
  return {
    url: server.url,
    connect: async () => {
      const nc = await connectNats(server.url, "test", createLogger("test", "silent"));
      conns.push(nc);
      return nc;
    },
    stop: async () => {
      await Promise.allSettled(conns.map((c) => c.close()));
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
