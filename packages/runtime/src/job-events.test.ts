import { randomUUID } from "node:crypto";
import { startNatsForTest as startTestNats } from "./test-nats.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEventPublisher, readJobEvents } from "./job-events.ts";

describe("job events on JetStream", () => {
  let nats: Awaited<ReturnType<typeof startTestNats>>;
  beforeAll(async () => {
    nats = await startTestNats();
  });
  afterAll(async () => nats?.stop());

  it("gives one job a gap-free, growing seq even with several publishers at once", async () => {
    const jobId = randomUUID();
    const [a, b] = [createEventPublisher(await nats.connect()), createEventPublisher(await nats.connect())];
    await Promise.all(
      Array.from({ length: 15 }, (_, i) => [
        a.publish(jobId, { type: "progress", progress: i }),
        b.publish(jobId, { type: "log", level: "info", message: `b${i}` }),
      ]).flat(),
    );
    const events = await readJobEvents(await nats.connect(), jobId);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it("replays only what came after `since`", async () => {
    const jobId = randomUUID();
    const pub = createEventPublisher(await nats.connect());
    for (let i = 0; i < 5; i++) await pub.publish(jobId, { type: "progress", progress: i * 10 });
    const later = await readJobEvents(await nats.connect(), jobId, 3);
    expect(later.map((e) => e.seq)).toEqual([4, 5]);
    expect(await readJobEvents(await nats.connect(), randomUUID())).toEqual([]);
  });
});
