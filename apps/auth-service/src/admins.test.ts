import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { createTestDatabase } from "@cutroom/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdmin, promoteToAdmin } from "./admins.ts";
import { PASSWORD, startAuthStack, type AuthStack } from "./test-stack.ts";

const cli = (args: string[], env: Record<string, string>) =>
  promisify(execFile)(process.execPath, ["--import", "tsx", join(import.meta.dirname, "cli.ts"), ...args], { env: { ...process.env, ...env }, timeout: 60_000 });

describe("making admins (npm run admin)", () => {
  let stack: AuthStack;
  beforeAll(async () => {
    stack = await startAuthStack();
  });
  afterAll(async () => stack?.stop());

  it("creates an admin with a credit account, who signs in and may use the admin methods", async () => {
    const made = await createAdmin(stack.db, { email: "Op@Example.com", password: PASSWORD, signupCredits: 100 });
    expect(made).toMatchObject({ user: { email: "op@example.com", role: "admin" }, credits: 100 });
    const asOp = await stack.as((await stack.login("op@example.com")).access_token);
    expect(asOp.caller!.role).toBe("admin");
    await expect(stack.client.call("auth", "stats", {}, asOp)).resolves.toMatchObject({ total_users: 1 });
    expect(await stack.client.call("auth", "me", {}, asOp)).toMatchObject({ credits: 100, role: "admin" });
  });

  it("generates a password when none is given, and refuses a common one or an email that has an account", async () => {
    const made = await createAdmin(stack.db, { email: "ops2@example.com", signupCredits: 0 });
    expect(made.generatedPassword).toMatch(/^[\w-]{24}$/);
    await expect(stack.login("ops2@example.com", made.generatedPassword)).resolves.toMatchObject({ token_type: "Bearer" });
    await expect(createAdmin(stack.db, { email: "ops3@example.com", password: "password", signupCredits: 0 })).rejects.toThrow(/too common/);
    await expect(createAdmin(stack.db, { email: "ops2@example.com", password: PASSWORD, signupCredits: 0 })).rejects.toThrow(/has an account already/);
  });

  it("promotes an existing user, keeping their password and credits", async () => {
    await stack.register("dev@example.com");
    const promoted = await promoteToAdmin(stack.db, { email: "DEV@example.com", signupCredits: 100 });
    expect(promoted).toMatchObject({ user: { role: "admin" }, credits: 100, wasAdmin: false });
    expect((await stack.verify((await stack.login("dev@example.com")).access_token)).payload.role).toBe("admin");
    await expect(promoteToAdmin(stack.db, { email: "nobody@example.com", signupCredits: 100 })).rejects.toThrow(/no account/);
  });

  it("runs as a command against DATABASE_URL, migrating a fresh database first, and says what it did", async () => {
    const other = await createTestDatabase("admincli");
    try {
      const created = await cli(["create-admin", "--email", "root@example.com", "--password", PASSWORD], { DATABASE_URL: other.url, SIGNUP_CREDITS: "40" });
      expect(created.stdout).toMatch(/^created admin: root@example\.com \(user id [0-9a-f-]{36}, 40 credits\)$/m);
      const promoted = await cli(["promote", "--email", "root@example.com"], { DATABASE_URL: other.url });
      expect(promoted.stdout).toMatch(/^already an admin: root@example\.com/m);
      await expect(cli(["promote", "--email", "ghost@example.com"], { DATABASE_URL: other.url })).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/no account with the email ghost@example\.com/) });
      await expect(cli(["create-admin"], { DATABASE_URL: other.url })).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/create-admin --email/) });
    } finally {
      await other.drop();
    }
    // Four commands, each a new Node process: seconds apiece on a busy machine.
  }, 120_000);
});
