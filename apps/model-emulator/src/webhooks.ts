import { createHmac, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@cutroom/runtime";

export const WEBHOOK_EVENTS = ["start", "output", "logs", "completed"] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** The HMAC key of a `whsec_<base64>` secret (Replicate's form); any other string is used as it is. */
export function webhookKey(secret: string): Buffer {
  return secret.startsWith("whsec_") ? Buffer.from(secret.slice("whsec_".length), "base64") : Buffer.from(secret);
}

/** The key as Replicate hands it out (GET /v1/webhooks/default/secret). */
export const publicSecret = (key: Buffer) => `whsec_${key.toString("base64")}`;

/** `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` (the Standard Webhooks scheme Replicate uses). */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

export interface WebhookSender {
  /** Queues a POST of `body` to `url`; a prediction's webhooks arrive in the order they were sent. */
  send(predictionId: string, url: string, body: string, event: WebhookEvent): void;
  close(): void;
}

const ATTEMPTS_COMPLETED = 4;
const TIMEOUT_MS = 10_000;

/** Delivers webhooks as Replicate does: signed, one prediction's in order, the final one retried with backoff. */
export function createWebhookSender(opts: { key: Buffer; log: Logger }): WebhookSender {
  const chains = new Map<string, Promise<void>>();
  const stop = new AbortController();

  const deliver = async (url: string, body: string, event: WebhookEvent) => {
    // One id per message, kept across retries, so a receiver can drop a duplicate.
    const id = `msg_${randomBytes(12).toString("hex")}`;
    const attempts = event === "completed" ? ATTEMPTS_COMPLETED : 1;
    for (let attempt = 1; attempt <= attempts && !stop.signal.aborted; attempt++) {
      const timestamp = Math.floor(Date.now() / 1000);
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "cutroom-model-emulator",
            "webhook-id": id,
            "webhook-timestamp": String(timestamp),
            "webhook-signature": signWebhook(opts.key, id, timestamp, body),
          },
          body,
          signal: AbortSignal.any([stop.signal, AbortSignal.timeout(TIMEOUT_MS)]),
        });
        await res.body?.cancel();
        if (res.ok) return;
        opts.log.warn({ url, event, status: res.status, attempt }, "webhook refused");
      } catch (err) {
        if (stop.signal.aborted) return;
        opts.log.warn({ url, event, err: (err as Error).message, attempt }, "webhook not delivered");
      }
      if (attempt < attempts) await sleep(1000 * 2 ** (attempt - 1), undefined, { signal: stop.signal }).catch(() => {});
    }
  };

  return {
    send(predictionId, url, body, event) {
      const next = (chains.get(predictionId) ?? Promise.resolve()).then(() => deliver(url, body, event));
      chains.set(predictionId, next);
      void next.finally(() => {
        if (chains.get(predictionId) === next) chains.delete(predictionId);
      });
    },
    close() {
      stop.abort();
    },
  };
}
