import { randomUUID } from "node:crypto";
import { subjects } from "@cutroom/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureStreams } from "./nats.ts";
import { NoReply } from "./rpc-replies.ts";
import { publishToStream, StreamPublishError } from "./stream-publish.ts";
import { startNatsForTest } from "./test-nats.ts";

describe("publishToStream", () => {
  let nats: Awaited<ReturnType<typeof startNatsForTest>>;
  beforeAll(async () => {
    nats = await startNatsForTest();
    await ensureStreams(await nats.connect());
  });
  afterAll(async () => nats?.stop());

  it("stores a message once per msgID: a second publish is acked with the first one's sequence, as a duplicate", async () => {
    const nc = await nats.connect();
    const id = randomUUID();
    const first = await publishToStream(nc, subjects.jobRun("image", "image.thumbnail"), "{}", { msgID: `${id}:1` });
    const again = await publishToStream(nc, subjects.jobRun("image", "image.thumbnail"), "{}", { msgID: `${id}:1` });
    expect(first).toMatchObject({ stream: "JOBS", duplicate: false });
    expect(again).toEqual({ ...first, duplicate: true });
  });

  it("is refused with JetStream's wrong-last-sequence error when the subject moved on, and stored when it did not", async () => {
    const nc = await nats.connect();
    const subject = subjects.jobEvents(randomUUID());
    const first = await publishToStream(nc, subject, "{}", { expectLastSubjectSequence: 0 });
    const refused = await publishToStream(nc, subject, "{}", { expectLastSubjectSequence: 0 }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(StreamPublishError);
    expect((refused as StreamPublishError).api_error.err_code).toBe(10071);
    await expect(publishToStream(nc, subject, "{}", { expectLastSubjectSequence: first.seq })).resolves.toMatchObject({ seq: first.seq + 1 });
  });

  it("fails at once with no_responders on a subject no stream holds", async () => {
    const err = await publishToStream(await nats.connect(), "nowhere.at.all", "{}").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoReply);
    expect((err as NoReply).reason).toBe("no_responders");
  });
});
