import { PassThrough } from "node:stream";
import Fastify, { type FastifyBaseLogger } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger, REDACTED } from "./logger.ts";

const TOKEN = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJlLWJ5dGVz";

/** A Fastify app as the gateway and storage-service build theirs: on the real logger, here writing to a stream we read. */
function appWithLogger() {
  const stream = new PassThrough();
  const lines: string[] = [];
  stream.on("data", (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter(Boolean)));
  const log = createLogger("test", "info", stream);
  const app = Fastify({ loggerInstance: log as FastifyBaseLogger });
  app.get("/ws/jobs/:id", async () => ({ ok: true }));
  app.get("/api/v1/jobs/:id/events", async () => ({ ok: true }));
  app.put("/storage/blob/:token", async () => ({ ok: true }));
  app.put("/storage/ingest/:token", async () => {
    throw new Error(`could not store /storage/ingest/${TOKEN}`);
  });
  app.get("/echo", async (req) => {
    req.log.info({ headers: req.headers, upload_url: `http://localhost/storage/blob/${TOKEN}?x=1` }, `proxying /storage/blob/${TOKEN}`);
    return {};
  });
  return { app, lines };
}

describe("the logger", () => {
  let close: (() => Promise<unknown>) | undefined;
  afterEach(async () => close?.());

  it("never writes an access token or a signed storage token, in request logs, errors or messages", async () => {
    const { app, lines } = appWithLogger();
    close = () => app.close();
    await app.inject({ method: "GET", url: `/ws/jobs/42?since=3&access_token=${TOKEN}` });
    await app.inject({ method: "GET", url: `/api/v1/jobs/42/events?access_token=${TOKEN}` });
    await app.inject({ method: "PUT", url: `/storage/blob/${TOKEN}`, payload: { bytes: 1 } });
    const failed = await app.inject({ method: "PUT", url: `/storage/ingest/${TOKEN}?part=1`, payload: { bytes: 1 } });
    expect(failed.statusCode).toBe(500);
    await app.inject({ method: "GET", url: "/echo", headers: { authorization: `Bearer ${TOKEN}` } });

    const output = lines.join("\n");
    expect(lines.length).toBeGreaterThanOrEqual(10);
    expect(output).not.toContain(TOKEN);
    expect(output).not.toContain("c2VjcmV0LXBheWxvYWQ");
    const urls = lines.map((l) => JSON.parse(l) as { req?: { url?: string } }).flatMap((l) => (l.req?.url ? [l.req.url] : []));
    expect([...new Set(urls)]).toEqual([
      `/ws/jobs/42?since=3&access_token=${REDACTED}`,
      `/api/v1/jobs/42/events?access_token=${REDACTED}`,
      `/storage/blob/${REDACTED}`,
      `/storage/ingest/${REDACTED}?part=1`,
      "/echo",
    ]);
    const echo = lines.map((l) => JSON.parse(l)).find((l) => l.headers);
    expect(echo).toMatchObject({
      headers: { authorization: REDACTED },
      upload_url: `http://localhost/storage/blob/${REDACTED}?x=1`,
      msg: `proxying /storage/blob/${REDACTED}`,
    });
    const error = lines.map((l) => JSON.parse(l)).find((l) => l.err);
    expect(error.err.message).toBe(`could not store /storage/ingest/${REDACTED}`);
  });
});
