import { randomUUID } from "node:crypto";
import { startNatsForTest as startTestNats } from "./test-nats.ts";
import { streams } from "@cutroom/contracts";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEventPublisher, createPipelineEventPublisher, readJobEvents, readLastJobEvent, readLastPipelineEvent, readPipelineEvents } from "./job-events.ts";
import { ensureStreams } from "./nats.ts";

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

  it("gives a pipeline its own gap-free seq on its own subject, and nothing after its pipeline_completed with unlessEnded", async () => {
    const id = randomUUID();
    const [a, b] = [createPipelineEventPublisher(await nats.connect()), createPipelineEventPublisher(await nats.connect())];
    await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).publish(id, { type: "stage_progress", stage: "images", progress: i * 10 })));
    await a.publish(id, { type: "pipeline_completed", status: "succeeded" });
    expect(await b.publish(id, { type: "stage_progress", stage: "images", progress: 99 }, { unlessEnded: true })).toBeNull();
    const nc = await nats.connect();
    expect((await readPipelineEvents(nc, id)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect((await readPipelineEvents(nc, id, 5)).map((e) => e.seq)).toEqual([6, 7]);
    expect(await readLastPipelineEvent(nc, id)).toMatchObject({ seq: 7, type: "pipeline_completed", pipeline_id: id });
    // A job with the same id is another subject: its seq starts at 1.
    expect(await createEventPublisher(nc).publish(id, { type: "progress", progress: 1 })).toMatchObject({ seq: 1 });
  });

  it("replays only what came after `since`", async () => {
    const jobId = randomUUID();
    const pub = createEventPublisher(await nats.connect());
    for (let i = 0; i < 5; i++) await pub.publish(jobId, { type: "progress", progress: i * 10 });
    const later = await readJobEvents(await nats.connect(), jobId, 3);
    expect(later.map((e) => e.seq)).toEqual([4, 5]);
    expect(await readJobEvents(await nats.connect(), randomUUID())).toEqual([]);
  });

  it("passes over a malformed message on a job's subject: replay leaves it out and the next event follows the last good one", async () => {
    const jobId = randomUUID();
    const nc = await nats.connect();
    const pub = createEventPublisher(nc);
    await pub.publish(jobId, { type: "progress", progress: 10 });
    // What a buggy or hostile publisher may leave on the subject: not JSON, then not an event.
    nc.publish(`jobs.events.${jobId}`, "not json");
    nc.publish(`jobs.events.${jobId}`, JSON.stringify({ job_id: jobId, seq: "2", type: "progress", progress: 1e9 }));
    await nc.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(await readLastJobEvent(nc, jobId)).toMatchObject({ seq: 1, progress: 10 });
    // A fresh publisher (another process) reads the subject's state from the stream.
    await createEventPublisher(await nats.connect()).publish(jobId, { type: "progress", progress: 20 });
    expect((await readJobEvents(nc, jobId)).map((e) => [e.seq, e.type === "progress" && e.progress])).toEqual([
      [1, 10],
      [2, 20],
    ]);
  });

  it("goes on from the seq a job reached when the broker lost its stored events, instead of starting again at 1", async () => {
    const jobId = randomUUID();
    const nc = await nats.connect();
    const pub = createEventPublisher(nc);
    for (let i = 1; i <= 3; i++) await pub.publish(jobId, { type: "progress", progress: i * 10 });
    // As a nats-server back with an empty store: the stream is there again, with nothing in it.
    await (await jetstreamManager(nc)).streams.delete(streams.jobEvents.name);
    await ensureStreams(nc);

    await pub.publish(jobId, { type: "progress", progress: 40 });
    // Another process knows only what the store holds and the floor it is given (a claim's last_event_seq).
    await createEventPublisher(await nats.connect()).publish(jobId, { type: "progress", progress: 50 }, { floor: 3 });
    await pub.publish(jobId, { type: "error", status: "canceled", error: { code: "CANCELED", message: "canceled by the user" } });
    expect((await readJobEvents(nc, jobId)).map((e) => e.seq)).toEqual([4, 5, 6]);
  });

  it("puts a job's first event above the floor it is given when nothing of the job is stored", async () => {
    const jobId = randomUUID();
    const pub = createEventPublisher(await nats.connect());
    expect(await pub.publish(jobId, { type: "progress", progress: 10 }, { floor: 7 })).toMatchObject({ seq: 8 });
    // The floor only raises: a stored seq above it wins.
    expect(await pub.publish(jobId, { type: "progress", progress: 20 }, { floor: 2 })).toMatchObject({ seq: 9 });
  });
});
