import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD, startAuthStack, type AuthStack } from "./test-stack.ts";

describe("sign-in throttling", () => {
  let stack: AuthStack;

  beforeAll(async () => {
    stack = await startAuthStack({ throttle: { loginFailuresPerAccount: 3, loginsPerAddressPerMinute: 6, registrationsPerAddressPerHour: 2 } });
  });
  afterAll(async () => stack?.stop());

  const from = (clientIp: string) => ({ clientIp });
  const login = (email: string, password: string, clientIp: string) => stack.client.call("auth", "login", { email, password }, from(clientIp));
  const register = (email: string, clientIp: string) => stack.client.call("auth", "register", { email, password: PASSWORD, full_name: "T" }, from(clientIp));

  it("refuses an account after its failures with RATE_LIMITED and a retry time, right password included, and leaves other accounts alone", async () => {
    await stack.register("henry@example.com");
    await stack.register("iris@example.com");
    for (let i = 0; i < 3; i++) await expect(login("henry@example.com", "wrong guess", `10.0.0.${i}`)).rejects.toMatchObject({ code: "INVALID_CREDENTIALS" });
    const refused = await login("henry@example.com", PASSWORD, "10.0.1.1").catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "RATE_LIMITED", status: 429, details: { retry_after: expect.any(Number) } });
    const { retry_after } = (refused as { details: { retry_after: number } }).details;
    expect(retry_after).toBeGreaterThan(0);
    expect(retry_after).toBeLessThanOrEqual(15 * 60);
    await expect(login("iris@example.com", PASSWORD, "10.0.1.2")).resolves.toMatchObject({ token_type: "Bearer" });
  });

  it("counts only failures against an account: right passwords never lock it", async () => {
    await stack.register("jack@example.com");
    for (let i = 0; i < 5; i++) await expect(login("jack@example.com", PASSWORD, `10.0.2.${i}`)).resolves.toMatchObject({ token_type: "Bearer" });
  });

  it("treats an unknown email like a known one, so a 429 tells nothing about which accounts exist", async () => {
    for (let i = 0; i < 3; i++) await expect(login("nobody@example.com", "guess", `10.0.3.${i}`)).rejects.toMatchObject({ code: "INVALID_CREDENTIALS" });
    await expect(login("nobody@example.com", "guess", "10.0.3.9")).rejects.toMatchObject({ code: "RATE_LIMITED" });
  });

  it("limits sign-in attempts and registrations per client address, other addresses unaffected", async () => {
    await stack.register("kate@example.com");
    for (let i = 0; i < 6; i++) await expect(login(`spray-${i}@example.com`, "guess", "192.0.2.7")).rejects.toMatchObject({ code: "INVALID_CREDENTIALS" });
    await expect(login("kate@example.com", PASSWORD, "192.0.2.7")).rejects.toMatchObject({ code: "RATE_LIMITED" });
    await expect(login("kate@example.com", PASSWORD, "::ffff:192.0.2.8")).resolves.toMatchObject({ token_type: "Bearer" });

    await register("lee@example.com", "198.51.100.1");
    await register("mia@example.com", "198.51.100.1");
    await expect(register("ned@example.com", "198.51.100.1")).rejects.toMatchObject({ code: "RATE_LIMITED", details: { retry_after: expect.any(Number) } });
    await expect(register("ned@example.com", "198.51.100.2")).resolves.toMatchObject({ email: "ned@example.com" });
  });
});
