import { randomUUID } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { streams } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BaseEnv } from "./env.ts";
import { createEventPublisher, readJobEvents } from "./job-events.ts";
import { createLogger } from "./logger.ts";
import { connectNats, ensureStreams, type NatsConnection } from "./nats.ts";

// npm test's own NATS (NATS_URL): one nats-server, or a 3-node JetStream cluster where Docker is, which
// CUTROOM_TEST_NATS_REPLICAS says (docs/adr/017). The other test files each start a nats-server of their own.
const env = BaseEnv.parse(process.env);
const replicas = Number(process.env.CUTROOM_TEST_NATS_REPLICAS ?? 1);
const log = createLogger("test", "silent");

describe.skipIf(!process.env.NATS_URL)("JetStream on the test run's NATS", () => {
  const conns: NatsConnection[] = [];
  const connect = async (url = env.NATS_URL) => {
    const nc = await connectNats(url, "test", log);
    conns.push(nc);
    return nc;
  };
  beforeAll(async () => ensureStreams(await connect(), { replicas }));
  afterAll(async () => Promise.allSettled(conns.map((c) => c.close())));

  it("keeps each stream in as many copies as there are servers, each on its own", async () => {
    const jsm = await jetstreamManager(await connect());
    for (const name of [streams.jobs.name, streams.jobEvents.name]) {
      const info = await jsm.streams.info(name);
      expect(info.config.num_replicas).toBe(replicas);
      expect(1 + (info.cluster?.replicas?.length ?? 0)).toBe(replicas);
    }
  });

  it("shows every server the same events, gap-free, whichever server each publisher is on", async () => {
    const urls = env.NATS_URL.split(",");
    const jobId = randomUUID();
    const publishers = await Promise.all(urls.map(async (url) => createEventPublisher(await connect(url))));
    await Promise.all(publishers.flatMap((pub, p) => Array.from({ length: 5 }, (_, i) => pub.publish(jobId, { type: "log", level: "info", message: `${p}.${i}` }))));
    for (const url of urls) {
      const events = await readJobEvents(await connect(url), jobId);
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 5 * urls.length }, (_, i) => i + 1));
    }
  });
});
