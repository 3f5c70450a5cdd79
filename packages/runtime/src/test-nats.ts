import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startNats } from "@cutroom/devstack";
import { createLogger } from "./logger.ts";
import { connectNats, ensureStreams, type NatsConnection } from "./nats.ts";

/**
 * A nats-server -js for one of runtime's own test files. Services' tests use @cutroom/testing,
 * which builds on this package; runtime cannot depend on it without a cycle.
 */
export async function startNatsForTest() {
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
    connect,
    stop: async () => {
      await Promise.allSettled(conns.map((c) => c.close()));
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
