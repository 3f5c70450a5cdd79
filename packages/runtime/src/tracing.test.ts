import { randomUUID } from "node:crypto";
import { subjects } from "@cutroom/contracts";
import type { Msg } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { createRpcClient, serveRpc } from "./rpc.ts";
import { publishToStream } from "./stream-publish.ts";
import { startNatsForTest } from "./test-nats.ts";
import { startTracing, tracesUrl, tracing } from "./tracing.ts";

describe("tracing settings", () => {
  it("sends spans to the base endpoint's /v1/traces, or to the traces endpoint as given", () => {
    expect(tracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" })).toBe("http://collector:4318/v1/traces");
    expect(tracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://other:9000/traces" })).toBe("http://other:9000/traces");
    expect(tracesUrl({})).toBeUndefined();
  });
});

describe("tracing off (no OTLP endpoint)", () => {
  let nats: Awaited<ReturnType<typeof startNatsForTest>>;
  beforeAll(async () => {
    nats = await startNatsForTest();
  });
  afterAll(async () => nats?.stop());

  it("starts nothing and puts no traceparent on an RPC request or a JetStream message", async () => {
    const log = createLogger("test", "silent");
    await startTracing({ OTEL_BSP_SCHEDULE_DELAY: 5000 }, "test", log);
    expect(tracing.on).toBe(false);

    const watcher = await nats.connect();
    const seen: Msg[] = [];
    const jobId = randomUUID();
    watcher.subscribe("svc.billing.*", { callback: (_e, m) => void seen.push(m) });
    watcher.subscribe(subjects.jobEvents(jobId), { callback: (_e, m) => void seen.push(m) });
    await watcher.flush();

    const serverNc = await nats.connect();
    const server = serveRpc(serverNc, "billing", { health: async () => ({ ok: true, checks: {} }) } as never, log);
    await serverNc.flush();
    await createRpcClient(await nats.connect(), { timeoutMs: 5000 }).call("billing", "health", {}).catch(() => {});
    await publishToStream(await nats.connect(), subjects.jobEvents(jobId), "{}", { expectLastSubjectSequence: 0 });
    await watcher.flush();
    await server.drain();

    expect(seen.map((m) => m.subject)).toEqual(["svc.billing.health", subjects.jobEvents(jobId)]);
    for (const m of seen) {
      expect(m.headers?.get("traceparent") ?? "").toBe("");
      expect(m.headers?.get("tracestate") ?? "").toBe("");
    }
  });
});
