import { randomUUID } from "node:crypto";
import { TokenCutoff, tokenCutoffsBucket } from "@cutroom/contracts";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { republishRecentCutoffs } from "./token-cutoffs.ts";
import { startAuthStack, type AuthStack } from "./test-stack.ts";

describe("an admin's changes to a user", () => {
  let stack: AuthStack;
  let asAdmin: Awaited<ReturnType<AuthStack["as"]>>;

  beforeAll(async () => {
    stack = await startAuthStack();
    await stack.register("root@example.com");
    await stack.makeAdmin("root@example.com");
    asAdmin = await stack.as((await stack.login("root@example.com")).access_token);
  });
  afterAll(async () => stack?.stop());

  const newUser = async () => {
    const email = `user-${randomUUID()}@example.com`;
    const { user_id } = await stack.register(email);
    return { email, user_id, tokens: await stack.login(email) };
  };
  const readCutoff = async (userId: string) => {
    const kv = await new Kvm(await stack.nats.connect()).open(tokenCutoffsBucket);
    const entry = await kv.get(userId);
    return entry?.operation === "PUT" ? TokenCutoff.parse(entry.json()) : null;
  };
  const forbidden = { code: "FORBIDDEN", status: 403 };

  it("checks the caller's role in the database: a demoted admin's token no longer lists, changes or grants", async () => {
    const eve = await newUser();
    await stack.makeAdmin(eve.email);
    const evesAdminToken = await stack.as((await stack.login(eve.email)).access_token);
    expect(evesAdminToken.caller!.role).toBe("admin");
    await expect(stack.client.call("auth", "grantCredits", { user_id: eve.user_id, amount: 10 }, evesAdminToken)).resolves.toEqual({ credits: 110 });

    await stack.client.call("auth", "updateUser", { user_id: eve.user_id, role: "user" }, asAdmin);
    // Her token still says admin; auth-service believes its database.
    await expect(stack.client.call("auth", "listUsers", {}, evesAdminToken)).rejects.toMatchObject(forbidden);
    await expect(stack.client.call("auth", "stats", {}, evesAdminToken)).rejects.toMatchObject(forbidden);
    await expect(stack.client.call("auth", "updateUser", { user_id: eve.user_id, role: "admin" }, evesAdminToken)).rejects.toMatchObject(forbidden);
    await expect(stack.client.call("auth", "grantCredits", { user_id: eve.user_id, amount: 1_000_000 }, evesAdminToken)).rejects.toMatchObject(forbidden);
    expect(await stack.client.call("auth", "me", {}, evesAdminToken)).toMatchObject({ role: "user", credits: 110 });
  });

  it("publishes a cutoff after the user's tokens; a refresh then gets a token issued after it, with the new tier", async () => {
    const bob = await newUser();
    const before = (await stack.verify(bob.tokens.access_token)).payload.iat!;
    const updated = await stack.client.call("auth", "updateUser", { user_id: bob.user_id, tier: "pro" }, asAdmin);
    expect(updated).toMatchObject({ tier: "pro", disabled: false });

    const cutoff = await readCutoff(bob.user_id);
    expect(cutoff).toMatchObject({ disabled: false });
    const cutoffSecond = Math.floor(Date.parse(cutoff!.tokens_valid_after) / 1000);
    expect(before).toBeLessThanOrEqual(cutoffSecond);

    // Refreshing at once works: the new token carries the new tier and postdates the cutoff.
    const fresh = (await stack.verify((await stack.refresh(bob.tokens.refresh_token)).access_token)).payload;
    expect(fresh).toMatchObject({ tier: "pro" });
    expect(fresh.iat!).toBeGreaterThan(cutoffSecond);
  });

  it("changes nothing and publishes no cutoff when the patch repeats the user's current state", async () => {
    const carl = await newUser();
    await stack.client.call("auth", "updateUser", { user_id: carl.user_id, role: "user", tier: "free", disabled: false }, asAdmin);
    expect(await readCutoff(carl.user_id)).toBeNull();
  });

  it("keeps a disabled user out: refresh tokens revoked, no sign-in, admin lists say so; enabled again, they sign in", async () => {
    const dan = await newUser();
    expect(await stack.client.call("auth", "updateUser", { user_id: dan.user_id, disabled: true }, asAdmin)).toMatchObject({ disabled: true });
    expect(await readCutoff(dan.user_id)).toMatchObject({ disabled: true });

    const disabled = { code: "ACCOUNT_DISABLED", status: 403 };
    await expect(stack.login(dan.email)).rejects.toMatchObject(disabled);
    await expect(stack.refresh(dan.tokens.refresh_token)).rejects.toMatchObject(disabled);
    // The password is still checked first: a wrong one says nothing about the account.
    await expect(stack.login(dan.email, "not the password")).rejects.toMatchObject({ code: "INVALID_CREDENTIALS" });
    const listed = await stack.client.call("auth", "listUsers", { limit: 100 }, asAdmin);
    expect(listed.data.find((u) => u.user_id === dan.user_id)).toMatchObject({ disabled: true });

    await stack.client.call("auth", "updateUser", { user_id: dan.user_id, disabled: false }, asAdmin);
    expect(await readCutoff(dan.user_id)).toMatchObject({ disabled: false });
    await expect(stack.login(dan.email)).resolves.toMatchObject({ token_type: "Bearer" });
    // The refresh token from before stays revoked.
    await expect(stack.refresh(dan.tokens.refresh_token)).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });

  it("grants credits only to admins, through auth, and says NOT_FOUND for an unknown user", async () => {
    const fay = await newUser();
    await expect(stack.client.call("auth", "grantCredits", { user_id: fay.user_id, amount: 5 }, await stack.as(fay.tokens.access_token))).rejects.toMatchObject(forbidden);
    await expect(stack.client.call("auth", "grantCredits", { user_id: fay.user_id, amount: 5 }, { caller: null })).rejects.toMatchObject({ code: "UNAUTHORIZED" });
    await expect(stack.client.call("auth", "grantCredits", { user_id: fay.user_id, amount: 5, note: "welcome" }, asAdmin)).resolves.toEqual({ credits: 105 });
    await expect(stack.client.call("auth", "grantCredits", { user_id: randomUUID(), amount: 5 }, asAdmin)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("publishes recent cutoffs again at start, in case NATS lost them", async () => {
    const gus = await newUser();
    await stack.client.call("auth", "updateUser", { user_id: gus.user_id, role: "admin" }, asAdmin);
    const published = await readCutoff(gus.user_id);
    const kv = await new Kvm(await stack.nats.connect()).open(tokenCutoffsBucket);
    await kv.purge(gus.user_id);
    expect(await readCutoff(gus.user_id)).toBeNull();

    await republishRecentCutoffs(stack.db, stack.deps.cutoffs, stack.deps.accessTokenTtlSeconds, stack.log);
    expect(await readCutoff(gus.user_id)).toEqual(published);
  });
});
