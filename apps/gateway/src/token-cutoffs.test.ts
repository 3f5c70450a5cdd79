import { randomUUID } from "node:crypto";
import { tokenCutoffsBucket } from "@cutroom/contracts";
import { createLogger } from "@cutroom/runtime";
import { startNatsForTest } from "@cutroom/runtime/test-nats";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { watchTokenCutoffs, type TokenCutoffWatch } from "./token-cutoffs.ts";

const log = createLogger("test", "silent");
const at = (unixSeconds: number) => new Date(unixSeconds * 1000 + 400).toISOString();
const until = async (ok: () => boolean) => {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
};
const refusal = (watch: TokenCutoffWatch, userId: string, iat: number) => {
  try {
    watch.check(userId, iat);
    return null;
  } catch (err) {
    return err;
  }
};

describe("token cutoffs in the gateway", () => {
  let nats: Awaited<ReturnType<typeof startNatsForTest>>;
  beforeAll(async () => {
    nats = await startNatsForTest();
  });
  afterAll(async () => nats?.stop());

  it("answers 503 until auth-service has made the bucket, then loads what it holds and follows changes", async () => {
    const watch = watchTokenCutoffs(await nats.connect(), log, { retryMs: 50 });
    const ada = randomUUID();
    const bob = randomUUID();
    try {
      expect(refusal(watch, ada, 1000)).toMatchObject({ code: "SERVICE_UNAVAILABLE", status: 503 });

      const kv = await new Kvm(await nats.connect()).create(tokenCutoffsBucket, { history: 1 });
      await kv.put(ada, JSON.stringify({ tokens_valid_after: at(1000), disabled: false }));
      await watch.ready;
      // Tokens from the cutoff's second or before are refused; later ones, and other users', pass.
      expect(refusal(watch, ada, 999)).toMatchObject({ code: "UNAUTHORIZED", status: 401, message: "token revoked, sign in again" });
      expect(refusal(watch, ada, 1000)).toMatchObject({ code: "UNAUTHORIZED" });
      expect(refusal(watch, ada, 1001)).toBeNull();
      expect(refusal(watch, bob, 1)).toBeNull();

      await kv.put(bob, JSON.stringify({ tokens_valid_after: at(2000), disabled: true }));
      await until(() => refusal(watch, bob, 5000) !== null);
      expect(refusal(watch, bob, 5000)).toMatchObject({ code: "ACCOUNT_DISABLED", status: 403 });
    } finally {
      await watch.stop();
    }
  });

  it("loads every value already in the bucket before it counts as ready", async () => {
    const kv = await new Kvm(await nats.connect()).create(tokenCutoffsBucket, { history: 1 });
    const users = Array.from({ length: 50 }, () => randomUUID());
    for (const u of users) await kv.put(u, JSON.stringify({ tokens_valid_after: at(3000), disabled: false }));
    const watch = watchTokenCutoffs(await nats.connect(), log);
    try {
      await watch.ready;
      for (const u of users) expect(refusal(watch, u, 3000)).toMatchObject({ code: "UNAUTHORIZED" });
    } finally {
      await watch.stop();
    }
  });

  it("reads one user's entry at once on sync", async () => {
    const kv = await new Kvm(await nats.connect()).create(tokenCutoffsBucket, { history: 1 });
    const watch = watchTokenCutoffs(await nats.connect(), log);
    const cy = randomUUID();
    try {
      await watch.ready;
      await kv.put(cy, JSON.stringify({ tokens_valid_after: at(4000), disabled: false }));
      await watch.sync(cy);
      expect(refusal(watch, cy, 4000)).toMatchObject({ code: "UNAUTHORIZED" });
    } finally {
      await watch.stop();
    }
  });
});
