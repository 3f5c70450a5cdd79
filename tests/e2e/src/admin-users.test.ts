import { randomUUID } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { expectEnvelope } from "./client.ts";
import { signUpAdmin, useStack } from "./stack.ts";

const FORMER_BOOTSTRAP_ADMIN = "bootstrap@e2e.cutroom.test";
// The variable is set as before, to show it no longer makes anyone an admin.
const ctx = useStack({ apps: ["auth-service", "billing-service", "gateway"], env: { BOOTSTRAP_ADMIN_EMAILS: FORMER_BOOTSTRAP_ADMIN } });

const newEmail = () => `user-${randomUUID()}@e2e.cutroom.test`;
const patchUser = (userId: string, body: unknown, token: string) => ctx.api.request("PATCH", `/api/v1/admin/users/${userId}`, { json: body, token });
const refresh = (refreshToken: string) => ctx.api.post("/auth/refresh", { refresh_token: refreshToken });

let root: Awaited<ReturnType<typeof signUpAdmin>> | undefined;
const rootAdmin = async () => (root ??= await signUpAdmin(ctx));

describe("admin changes to users take effect at once", () => {
  it("a demoted admin's token stops working: it cannot grant itself credits, and a refresh gives a user's token", async () => {
    const admin = await rootAdmin();
    const mallory = await signUpAdmin(ctx, newEmail());
    expect((await ctx.api.post(`/admin/users/${mallory.user_id}/credits`, { amount: 5 }, mallory.token)).body).toEqual({ credits: 105 });

    const demoted = await patchUser(mallory.user_id, { role: "user" }, admin.token);
    expect(demoted.status).toBe(200);
    expect(demoted.body).toMatchObject({ role: "user", disabled: false });

    const grant = await ctx.api.post(`/admin/users/${mallory.user_id}/credits`, { amount: 1_000_000 }, mallory.token);
    expectEnvelope(grant, 401, "UNAUTHORIZED");
    expect(grant.body.error.message).toBe("token revoked, sign in again");
    expectEnvelope(await ctx.api.get("/auth/me", mallory.token), 401, "UNAUTHORIZED");

    const renewed = await refresh(mallory.refresh);
    expect(renewed.status).toBe(200);
    const token = renewed.body.access_token as string;
    expect((await ctx.api.get("/auth/me", token)).body).toMatchObject({ role: "user", credits: 105 });
    expectEnvelope(await ctx.api.post(`/admin/users/${mallory.user_id}/credits`, { amount: 1_000_000 }, token), 403, "FORBIDDEN");
    expect((await ctx.api.get("/billing/credits", token)).body.credits).toBe(105);
  });

  it("a tier change refuses the old token at once, and a refresh carries the new tier and its limits", async () => {
    const admin = await rootAdmin();
    const user = await ctx.api.signUp();
    expect((await ctx.api.get("/billing/credits", user.token)).body).toMatchObject({ tier: "free", limits: { jobs_per_minute: 10 } });

    expect((await patchUser(user.user_id, { tier: "pro" }, admin.token)).body).toMatchObject({ tier: "pro" });
    expectEnvelope(await ctx.api.get("/billing/credits", user.token), 401, "UNAUTHORIZED");

    const renewed = await refresh(user.refresh);
    expect(renewed.status).toBe(200);
    expect((await ctx.api.get("/billing/credits", renewed.body.access_token)).body).toMatchObject({ tier: "pro", limits: { jobs_per_minute: 60 } });
  });

  it("a disabled user is out at once: their token, their refresh token and their password no longer work, until enabled again", async () => {
    const admin = await rootAdmin();
    const user = await ctx.api.signUp();
    const disabled = await patchUser(user.user_id, { disabled: true }, admin.token);
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ user_id: user.user_id, disabled: true });

    const me = await ctx.api.get("/auth/me", user.token);
    expectEnvelope(me, 403, "ACCOUNT_DISABLED");
    expectEnvelope(await ctx.api.request("GET", `/api/v1/jobs/${randomUUID()}/events?access_token=${user.token}`), 403, "ACCOUNT_DISABLED");
    const refused = await refresh(user.refresh);
    expectEnvelope(refused, 403, "ACCOUNT_DISABLED");
    const login = await ctx.api.post("/auth/login", { email: user.email, password: user.password });
    expectEnvelope(login, 403, "ACCOUNT_DISABLED");
    expect(login.body.error.message).toMatch(/disabled/);
    // A wrong password is still just a wrong password.
    expectEnvelope(await ctx.api.post("/auth/login", { email: user.email, password: "not the password" }), 401, "INVALID_CREDENTIALS");
    const listed = await ctx.api.get("/admin/users?limit=100", admin.token);
    expect(listed.body.data.find((u: { user_id: string }) => u.user_id === user.user_id)).toMatchObject({ disabled: true });

    expect((await patchUser(user.user_id, { disabled: false }, admin.token)).body).toMatchObject({ disabled: false });
    const back = await ctx.api.post("/auth/login", { email: user.email, password: user.password });
    expect(back.status).toBe(200);
    expect((await ctx.api.get("/auth/me", back.body.access_token)).status).toBe(200);
    expectEnvelope(await refresh(user.refresh), 401, "UNAUTHORIZED");
  });

  it("answers a malformed change with 422 and an unknown user with 404", async () => {
    const admin = await rootAdmin();
    const user = await ctx.api.signUp();
    expectEnvelope(await patchUser(user.user_id, { disabled: "yes" }, admin.token), 422, "INVALID_INPUT");
    expectEnvelope(await patchUser(randomUUID(), { disabled: true }, admin.token), 404, "NOT_FOUND");
  });

  it("leaves billing's grant to auth-service: the gateway's NATS user may not call it directly", async () => {
    const user = await ctx.api.signUp();
    const nc = await connect({ ...ctx.stack.natsOptions("gateway"), maxReconnectAttempts: 0 });
    try {
      const envelope = JSON.stringify({ request_id: randomUUID(), caller: { user_id: user.user_id, role: "admin", tier: "free" }, body: { user_id: user.user_id, amount: 1000 } });
      await expect(nc.request("svc.billing.grant", envelope, { timeout: 5000 })).rejects.toThrow(/permissions violation/i);
    } finally {
      await nc.close();
    }
    expect((await ctx.api.get("/billing/credits", user.token)).body.credits).toBe(100);
  });
});

describe("the first admin", () => {
  it("is no longer whoever registers an address from BOOTSTRAP_ADMIN_EMAILS first, but who an operator makes one", async () => {
    const first = await ctx.api.signUp(FORMER_BOOTSTRAP_ADMIN);
    expect((await ctx.api.get("/auth/me", first.token)).body).toMatchObject({ role: "user" });
    expectEnvelope(await ctx.api.get("/admin/users", first.token), 403, "FORBIDDEN");

    const admin = await signUpAdmin(ctx, newEmail());
    expect((await ctx.api.get("/auth/me", admin.token)).body).toMatchObject({ role: "admin" });
    expect((await ctx.api.get("/admin/users", admin.token)).status).toBe(200);
  });
});

describe("passwords", () => {
  it("refuses a commonly breached password, or the email itself, with 422 on the password field", async () => {
    for (const password of ["12345678", "password", "Password1", "iloveyou"]) {
      const reply = await ctx.api.post("/auth/register", { email: newEmail(), password, full_name: "Weak" });
      expectEnvelope(reply, 422, "INVALID_INPUT");
      expect(reply.body.error.details.fields).toEqual([expect.objectContaining({ path: "password", message: expect.stringMatching(/^is too common: /) })]);
    }
    const email = `ada.lovelace-${randomUUID().slice(0, 8)}@e2e.cutroom.test`;
    const own = await ctx.api.post("/auth/register", { email, password: email.split("@")[0], full_name: "Ada" });
    expectEnvelope(own, 422, "INVALID_INPUT");
    expect(own.body.error.details.fields[0]).toMatchObject({ path: "password", message: "is too common: it is your email address" });
    expect((await ctx.api.post("/auth/register", { email, password: "correct horse battery staple", full_name: "Ada" })).status).toBe(201);
  });
});
