import { describe, expect, it } from "vitest";
import { Env } from "./env.ts";

describe("auth-service env", () => {
  it("defaults the token lifetimes and the sign-up credits", () => {
    const env = Env.parse({});
    expect(env.ACCESS_TOKEN_TTL_SECONDS).toBe(900);
    expect(env.REFRESH_TOKEN_TTL_SECONDS).toBe(30 * 24 * 60 * 60);
    expect(env.SIGNUP_CREDITS).toBe(100);
  });

  it("reads SIGNUP_CREDITS, 0 included, and refuses a negative amount", () => {
    expect(Env.parse({ SIGNUP_CREDITS: "25" }).SIGNUP_CREDITS).toBe(25);
    expect(Env.parse({ SIGNUP_CREDITS: "0" }).SIGNUP_CREDITS).toBe(0);
    expect(Env.safeParse({ SIGNUP_CREDITS: "-5" }).success).toBe(false);
  });

  it("no longer reads BOOTSTRAP_ADMIN_EMAILS: registering never makes an admin", () => {
    expect(Env.parse({ BOOTSTRAP_ADMIN_EMAILS: "root@example.com" })).not.toHaveProperty("BOOTSTRAP_ADMIN_EMAILS");
  });
});
