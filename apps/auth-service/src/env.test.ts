import { describe, expect, it } from "vitest";
import { Env } from "./env.ts";

describe("auth-service env", () => {
  it("reads BOOTSTRAP_ADMIN_EMAILS as a trimmed, lower-case list and defaults the token lifetimes", () => {
    const env = Env.parse({ BOOTSTRAP_ADMIN_EMAILS: " Root@Example.com , ops@example.com,," });
    expect(env.BOOTSTRAP_ADMIN_EMAILS).toEqual(["root@example.com", "ops@example.com"]);
    expect(env.ACCESS_TOKEN_TTL_SECONDS).toBe(900);
    expect(env.REFRESH_TOKEN_TTL_SECONDS).toBe(30 * 24 * 60 * 60);
    expect(Env.parse({}).BOOTSTRAP_ADMIN_EMAILS).toEqual([]);
  });
});
