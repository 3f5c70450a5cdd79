import { createHmac } from "node:crypto";
import { subjects } from "@cutroom/contracts";
import type { NatsConnection } from "@cutroom/runtime";
import { startNatsForTest } from "@cutroom/runtime/test-nats";
import Fastify from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorsPlugin } from "../plugins/errors.ts";
import { jsonBodyPlugin } from "../plugins/json-body.ts";
import { verifyWebhookSignature, webhookRoutes } from "./webhooks.ts";

const SECRET = `whsec_${Buffer.from("cutroom webhook test key").toString("base64")}`;

function sign(body: string, id = "msg_1", timestamp = Math.floor(Date.now() / 1000)) {
  const key = Buffer.from(SECRET.slice("whsec_".length), "base64");
  const signature = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": `v1,${signature}`, "content-type": "application/json" };
}

describe("webhook signatures", () => {
  it("accepts the Standard Webhooks example Replicate follows, and nothing altered", () => {
    // The example of the Standard Webhooks specification, which Replicate's signatures follow.
    const headers = { id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330", signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" };
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const body = '{"test": 2432232314}';
    expect(verifyWebhookSignature(headers, body, secret, 1614265330)).toBe(true);
    expect(verifyWebhookSignature({ ...headers, signature: `v1,bm90IGl0 ${headers.signature}` }, body, secret, 1614265330)).toBe(true);
    expect(verifyWebhookSignature(headers, '{"test": 2432232315}', secret, 1614265330)).toBe(false);
    expect(verifyWebhookSignature(headers, body, "whsec_b3RoZXIga2V5", 1614265330)).toBe(false);
    expect(verifyWebhookSignature(headers, body, secret, 1614265330 + 301)).toBe(false);
    expect(verifyWebhookSignature({ ...headers, signature: "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" }, body, secret, 1614265330)).toBe(false);
  });
});

describe("POST /webhooks/replicate", () => {
  let nats: Awaited<ReturnType<typeof startNatsForTest>>;
  let nc: NatsConnection;
  const app = Fastify();
  beforeAll(async () => {
    nats = await startNatsForTest();
    nc = await nats.connect();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    await app.register(errorsPlugin);
    await app.register(jsonBodyPlugin);
    await app.register(webhookRoutes, { nc, webhookSecret: SECRET });
    await app.register(async (off) => off.register(webhookRoutes, { nc }), { prefix: "/off" });
  });
  afterAll(async () => {
    await app.close();
    await nats?.stop();
  });

  it("relays a signed prediction update to the worker waiting on it", async () => {
    const heard: unknown[] = [];
    const sub = nc.subscribe(subjects.modelWebhook("ufnhr7h3n9rj40cmw3ktnpgjkr"), { callback: (_e, m) => void heard.push(m.json()) });
    const body = JSON.stringify({ id: "ufnhr7h3n9rj40cmw3ktnpgjkr", status: "processing", logs: "40%|" });
    const res = await app.inject({ method: "POST", url: "/webhooks/replicate", headers: sign(body), payload: body });
    expect(res.statusCode).toBe(200);
    await nc.flush();
    await new Promise((r) => setTimeout(r, 50));
    expect(heard).toEqual([{ id: "ufnhr7h3n9rj40cmw3ktnpgjkr" }]);
    sub.unsubscribe();
  });

  it("refuses an unsigned, forged or stale webhook with 401, and relays nothing", async () => {
    const heard: unknown[] = [];
    const sub = nc.subscribe(subjects.modelWebhook("*"), { callback: (_e, m) => void heard.push(m.json()) });
    const body = JSON.stringify({ id: "abc123", status: "succeeded" });
    const cases = [
      { "content-type": "application/json" },
      { ...sign(body), "webhook-signature": "v1,Zm9yZ2Vk" },
      sign(body, "msg_1", Math.floor(Date.now() / 1000) - 3600),
      sign(JSON.stringify({ id: "abc123", status: "failed" })),
    ];
    for (const headers of cases) {
      const res = await app.inject({ method: "POST", url: "/webhooks/replicate", headers, payload: body });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe("UNAUTHORIZED");
    }
    await nc.flush();
    expect(heard).toEqual([]);
    sub.unsubscribe();
  });

  it("answers 400 for a signed body that is no prediction, 404 where no secret is configured", async () => {
    const body = JSON.stringify({ id: "../../etc" });
    expect((await app.inject({ method: "POST", url: "/webhooks/replicate", headers: sign(body), payload: body })).statusCode).toBe(400);
    const ok = JSON.stringify({ id: "abc123" });
    const off = await app.inject({ method: "POST", url: "/off/webhooks/replicate", headers: sign(ok), payload: ok });
    expect(off.statusCode).toBe(404);
  });
});
