import { describe, expect, it } from "vitest";
import { Env } from "./env.ts";

describe("billing-service env", () => {
  it("keeps test purchases off unless BILLING_TEST_PURCHASES says otherwise", () => {
    expect(Env.parse({}).BILLING_TEST_PURCHASES).toBe(false);
    expect(Env.parse({ BILLING_TEST_PURCHASES: "false" }).BILLING_TEST_PURCHASES).toBe(false);
    expect(Env.parse({ BILLING_TEST_PURCHASES: "true" }).BILLING_TEST_PURCHASES).toBe(true);
    expect(Env.parse({ BILLING_TEST_PURCHASES: "1" }).BILLING_TEST_PURCHASES).toBe(true);
    expect(Env.safeParse({ BILLING_TEST_PURCHASES: "maybe" }).success).toBe(false);
  });

  it("refuses to start with test purchases in production, naming the variable", () => {
    const parsed = Env.safeParse({ NODE_ENV: "production", BILLING_TEST_PURCHASES: "true" });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues[0]!.path).toEqual(["BILLING_TEST_PURCHASES"]);
    expect(Env.parse({ NODE_ENV: "production" }).BILLING_TEST_PURCHASES).toBe(false);
  });
});
