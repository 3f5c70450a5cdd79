import { randomUUID } from "node:crypto";
import { eq } from "@cutroom/db";
import { users } from "@cutroom/db/auth";
import { createRpcClient } from "@cutroom/runtime";
import { startTestNats } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuthHandlers } from "./app.ts";
import { PASSWORD, startAuthStack, type AuthStack } from "./test-stack.ts";

const ADMIN = "boss@example.com";

describe("accounts, sign-in and admin methods", () => {
  let stack: AuthStack;

  beforeAll(async () => {
    stack = await startAuthStack();
  });
  afterAll(async () => stack?.stop());

  it("registers a user with 100 free credits and refuses the same email in another case with EMAIL_TAKEN", async () => {
    const reply = await stack.register("Carol@Example.com");
    expect(reply).toMatchObject({ email: "carol@example.com", tier: "free", credits: 100 });
    await expect(stack.register("carol@EXAMPLE.com")).rejects.toMatchObject({ code: "EMAIL_TAKEN", status: 409 });

    const [row] = await stack.db.select().from(users).where(eq(users.id, reply.user_id));
    expect(row!.passwordHash).toMatch(/^\$argon2id\$/);
    expect(row!.role).toBe("user");
  });

  it("refuses a common password or the email itself with INVALID_INPUT on the password field, and creates no account", async () => {
    for (const [email, password] of [["kim@example.com", "12345678"], ["kim@example.com", "Password"], ["kim.lee@example.com", "kim.lee@example.com"], ["kimberly.lee@example.com", "KIMBERLY.LEE"]]) {
      await expect(stack.register(email!, password), password).rejects.toMatchObject({
        code: "INVALID_INPUT",
        status: 422,
        details: { fields: [{ path: "password", message: expect.stringMatching(/^is too common: /) }] },
      });
    }
    await expect(stack.register("kim@example.com")).resolves.toMatchObject({ credits: 100 });
  });

  it("opens new accounts with SIGNUP_CREDITS", async () => {
    const handlers = createAuthHandlers({ ...stack.deps, signupCredits: 7 });
    const ctx = { requestId: randomUUID(), caller: null, log: stack.log };
    await expect(handlers.register({ email: "lena@example.com", password: PASSWORD, full_name: "Lena" }, ctx)).resolves.toMatchObject({ credits: 7 });
    const none = createAuthHandlers({ ...stack.deps, signupCredits: 0 });
    await expect(none.register({ email: "lou@example.com", password: PASSWORD, full_name: "Lou" }, ctx)).resolves.toMatchObject({ credits: 0 });
    expect(await stack.client.call("auth", "me", {}, await stack.as((await stack.login("lou@example.com")).access_token))).toMatchObject({ credits: 0 });
  });

  it("makes no admin of an address that used to be in BOOTSTRAP_ADMIN_EMAILS: every registration is a user", async () => {
    await stack.register("admin@example.com");
    const asThem = await stack.as((await stack.login("admin@example.com")).access_token);
    expect(asThem.caller!.role).toBe("user");
    await expect(stack.client.call("auth", "listUsers", {}, asThem)).rejects.toMatchObject({ code: "FORBIDDEN" });
  });

  it("creates exactly one account when the same email registers several times at once", async () => {
    const results = await Promise.allSettled([1, 2, 3].map(() => stack.register("dave@example.com")));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((r) => r.status === "rejected")) expect(r.reason).toMatchObject({ code: "EMAIL_TAKEN" });
  });

  it("undoes a registration whose credit account cannot be opened, so the email can register again", async () => {
    const billingless = await startTestNats();
    try {
      const handlers = createAuthHandlers({ ...stack.deps, rpc: createRpcClient(await billingless.connect(), { timeoutMs: 1000 }) });
      const ctx = { requestId: randomUUID(), caller: null, log: stack.log };
      await expect(handlers.register({ email: "erin@example.com", password: PASSWORD, full_name: "Erin" }, ctx)).rejects.toMatchObject({
        code: "SERVICE_UNAVAILABLE",
      });
    } finally {
      await billingless.stop();
    }
    await expect(stack.register("erin@example.com")).resolves.toMatchObject({ credits: 100 });
  });

  it("signs in with the right password, records last_login and shows the balance on me", async () => {
    await stack.register("frank@example.com");
    const pair = await stack.login("FRANK@example.com");
    const me = await stack.client.call("auth", "me", {}, await stack.as(pair.access_token));
    expect(me).toMatchObject({ email: "frank@example.com", full_name: "Test User", role: "user", tier: "free", credits: 100 });
    expect(Date.now() - Date.parse(me.last_login!)).toBeLessThan(60_000);
  });

  it("answers a wrong password and an unknown email alike, with INVALID_CREDENTIALS", async () => {
    await stack.register("grace@example.com");
    const wrong = await stack.login("grace@example.com", "not the password").catch((e: unknown) => e);
    const unknown = await stack.login("nobody@example.com", "not the password").catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: "INVALID_CREDENTIALS", status: 401 });
    expect(unknown).toMatchObject({ code: "INVALID_CREDENTIALS", status: 401, message: (wrong as Error).message });
  });

  it("takes about as long to refuse an unknown email as a wrong password", async () => {
    await stack.register("heidi@example.com");
    const timed = async (email: string) => {
      const started = performance.now();
      await stack.login(email, "not the password").catch(() => {});
      return performance.now() - started;
    };
    const wrong: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 6; i++) {
      wrong.push(await timed("heidi@example.com"));
      unknown.push(await timed(`nobody-${i}@example.com`));
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    expect(median(unknown) / median(wrong)).toBeGreaterThan(0.5);
    expect(median(unknown) / median(wrong)).toBeLessThan(2);
  });

  it("refuses the admin methods to a plain user with FORBIDDEN", async () => {
    await stack.register("ivan@example.com");
    const asIvan = await stack.as((await stack.login("ivan@example.com")).access_token);
    const forbidden = { code: "FORBIDDEN", status: 403 };
    await expect(stack.client.call("auth", "listUsers", {}, asIvan)).rejects.toMatchObject(forbidden);
    await expect(stack.client.call("auth", "stats", {}, asIvan)).rejects.toMatchObject(forbidden);
    await expect(stack.client.call("auth", "updateUser", { user_id: asIvan.caller!.user_id, role: "admin" }, asIvan)).rejects.toMatchObject(forbidden);
  });

  it("makes a promoted user an admin who can list users, change a tier and read stats", async () => {
    expect(await stack.register(ADMIN)).toMatchObject({ credits: 100 });
    await stack.makeAdmin(ADMIN);
    const admin = await stack.login(ADMIN);
    const asAdmin = await stack.as(admin.access_token);
    expect(asAdmin.caller!.role).toBe("admin");

    const judy = await stack.register("judy@example.com");
    const judyTokens = await stack.login("judy@example.com");

    const listed = await stack.client.call("auth", "listUsers", { limit: 100 }, asAdmin);
    expect(listed.total).toBe(listed.data.length);
    expect(listed.data.find((u) => u.user_id === judy.user_id)).toMatchObject({ email: "judy@example.com", credits: 100, role: "user" });

    const updated = await stack.client.call("auth", "updateUser", { user_id: judy.user_id, tier: "pro" }, asAdmin);
    expect(updated).toMatchObject({ tier: "pro", role: "user", credits: 100 });
    // Her next refresh carries the new tier.
    const refreshed = await stack.refresh(judyTokens.refresh_token);
    expect((await stack.verify(refreshed.access_token)).payload).toMatchObject({ tier: "pro" });

    expect(await stack.client.call("auth", "stats", {}, asAdmin)).toEqual({ total_users: listed.total, users_today: listed.total });
    await expect(stack.client.call("auth", "updateUser", { user_id: randomUUID(), tier: "pro" }, asAdmin)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("reports the database as up on health", async () => {
    expect(await stack.client.call("auth", "health", {})).toMatchObject({ status: "up", service: "auth", checks: { database: { status: "up" } } });
  });
});
