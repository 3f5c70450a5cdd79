import { afterAll, beforeAll } from "vitest";
import { createClient, type Client } from "./client.ts";
import { makeAdmin, startStack as startDevStack, type AppName, type Stack } from "@cutroom/devstack";
import { createTestDatabase } from "@cutroom/testing";

export type { Stack };
export const ADMIN_EMAIL = "admin@e2e.cutroom.test";

/** The whole product as separate processes, on a database of this test file's own. */
export async function startStack(opts: { apps?: readonly AppName[]; env?: Record<string, string>; instances?: Partial<Record<AppName, number>> } = {}): Promise<Stack> {
  const db = await createTestDatabase("e2e");
  const stack = await startDevStack({
    databaseUrl: db.url,
    apps: opts.apps,
    ...(opts.instances ? { instances: opts.instances } : {}),
    parentDir: process.env.CUTROOM_TEST_DIR,
    env: {
      // Every test client is 127.0.0.1: per-address sign-in limits would count the whole file as one user.
      AUTH_LOGINS_PER_ADDRESS_PER_MINUTE: "1000",
      AUTH_REGISTRATIONS_PER_ADDRESS_PER_HOUR: "1000",
      ...opts.env,
    },
  }).catch(async (err) => {
    await db.drop();
    throw err;
  });
  return {
    ...stack,
    stop: async () => {
      await stack.stop();
      await db.drop();
    },
  };
}

/**
 * Signs up through the API, is made an admin as an operator makes one (`npm run admin -- promote`),
 * and signs in again for a token that says admin.
 */
export async function signUpAdmin(ctx: { stack: Stack; api: Client }, email = ADMIN_EMAIL) {
  const user = await ctx.api.signUp(email);
  await makeAdmin(ctx.stack, email);
  const login = await ctx.api.post("/auth/login", { email, password: user.password });
  if (login.status !== 200) throw new Error(`admin login failed: ${login.status} ${JSON.stringify(login.body)}`);
  return { ...user, token: login.body.access_token as string, refresh: login.body.refresh_token as string };
}

/** Starts the stack before this file's tests and stops it after; `ctx` fills in once started. */
export function useStack(opts: Parameters<typeof startStack>[0] = {}) {
  const ctx = {} as { stack: Stack; api: Client };
  beforeAll(async () => {
    ctx.stack = await startStack(opts);
    ctx.api = createClient(ctx.stack.url);
  });
  afterAll(async () => ctx.stack?.stop());
  return ctx;
}
