import { CutroomError, type Cutroom, type User } from "@cutroom/sdk";
import type { Ctx } from "../context.ts";
import { CliError, table, usageError } from "../output.ts";
import { intOption } from "./jobs.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const tiers = ["free", "pro", "enterprise"] as const;

// The database commands load auth-service's code (argon2, Drizzle) only when they run.
const database = async () => {
  const [{ runAdminCommand, describeAdminCommand }, { readEnv }] = await Promise.all([import("@cutroom/auth-service/admin-commands"), import("@cutroom/auth-service/env")]);
  return { runAdminCommand, describeAdminCommand, env: readEnv() };
};

/** Applies the committed migrations to DATABASE_URL, as every service does at start (a no-op when applied). */
export async function migrate(ctx: Ctx) {
  const [{ runMigrations }, { env }] = await Promise.all([import("@cutroom/db"), database()]);
  await runMigrations(env.DATABASE_URL);
  ctx.out.result({ migrated: true, database: redactUrl(env.DATABASE_URL) }, (r) => `migrations applied to ${r.database}`);
}

/** create-admin and promote: the very code of `npm run admin`, straight in the database. */
export async function adminCommand(ctx: Ctx, command: "create-admin" | "promote", values: { email?: string; password?: string; name?: string }) {
  if (!values.email) throw usageError(`${command} needs --email`);
  if (command === "promote" && (values.password !== undefined || values.name !== undefined)) throw usageError("promote takes only --email");
  const { runAdminCommand, describeAdminCommand, env } = await database();
  let result: Awaited<ReturnType<typeof runAdminCommand>>;
  try {
    result = await runAdminCommand(command, { email: values.email, password: values.password, name: values.name }, env);
  } catch (err) {
    if (err instanceof CliError || err instanceof CutroomError) throw err;
    throw new CliError("INVALID_INPUT", `${command} failed: ${(err as Error).message}`);
  }
  ctx.out.result(result, describeAdminCommand);
}

/** A user by id, or by email through the admin listing (paged; there is no lookup by email). */
async function findUser(sdk: Cutroom, who: string): Promise<User> {
  const byId = UUID.test(who);
  const email = who.trim().toLowerCase();
  for (let offset = 0; ; offset += 100) {
    const page = await sdk.admin.users({ limit: 100, offset });
    const user = page.data.find((u) => (byId ? u.user_id === who : u.email === email));
    if (user) return user;
    if (!page.has_more) throw new CliError("NOT_FOUND", `no user ${who}`, undefined, { user: who });
  }
}

export async function creditsGrant(ctx: Ctx, args: string[], values: { note?: string }) {
  const amount = intOption("amount", args[1]!);
  if (amount < 1) throw usageError(`credits grant needs a positive number of credits, got ${args[1]}`);
  const sdk = await ctx.admin();
  const user = await findUser(sdk, args[0]!);
  const { credits } = await sdk.admin.grantCredits(user.user_id, { amount, ...(values.note ? { note: values.note } : {}) });
  ctx.out.result({ user_id: user.user_id, email: user.email, granted: amount, credits }, (r) => `granted ${r.granted} credits to ${r.email}: ${r.credits} available`);
}

export async function tierSet(ctx: Ctx, args: string[]) {
  const tier = args[1]!;
  if (!(tiers as readonly string[]).includes(tier)) throw usageError(`unknown tier ${tier}: one of ${tiers.join(", ")}`, { tier, tiers });
  const sdk = await ctx.admin();
  const user = await findUser(sdk, args[0]!);
  const updated = await sdk.admin.updateUser(user.user_id, { tier: tier as (typeof tiers)[number] });
  ctx.out.result(updated, (u) => `${u.email} is on the ${u.tier} tier now (their tokens were revoked: they refresh or sign in again)`);
}

export async function queues(ctx: Ctx) {
  const reply = await (await ctx.admin()).admin.queues();
  ctx.out.result(reply, (r) =>
    table(
      ["QUEUE", "QUEUED", "HELD", "RUNNING", "PENDING", "ACK PENDING"],
      r.data.map((q) => [q.queue, q.queued, q.held, q.running, q.pending, q.ack_pending]),
    ),
  );
}

const isMissingRoute = (err: unknown) => err instanceof CutroomError && err.status === 404 && /^no route for /.test(err.message);

/** The worker processes: GET /api/v1/workers where the server has a registry, else each worker kind's instances on GET /health. */
export async function workersList(ctx: Ctx) {
  const sdk = await ctx.admin();
  try {
    const registry = (await sdk.admin.workers()) as { workers?: Record<string, unknown>[] };
    ctx.out.result(registry, (r) =>
      table(
        ["ID", "KIND", "STATUS", "LOAD", "IN FLIGHT", "HOST", "PID", "LAST SEEN"],
        (r.workers ?? []).map((w) => [w.id, w.kind, w.status, w.load === undefined ? undefined : `${w.load}%`, w.in_flight, w.host, w.pid, w.last_seen] as (string | number | undefined)[]),
      ),
    );
    return;
  } catch (err) {
    if (!isMissingRoute(err)) throw err;
  }
  const health = await sdk.admin.health();
  const workers = Object.entries(health.services)
    .filter(([name]) => name.startsWith("worker-"))
    .flatMap(([kind, k]) => (k.instances ?? []).map((i) => ({ kind, id: i.id, status: i.status, host: i.host, pid: i.pid, started_at: i.started_at, load: i.load ?? {} })));
  const kinds = Object.fromEntries(Object.entries(health.services).filter(([name]) => name.startsWith("worker-")).map(([kind, k]) => [kind, { status: k.status, count: k.count }]));
  ctx.out.result({ source: "health", kinds, data: workers }, (r) =>
    [
      table(
        ["KIND", "STATUS", "PROCESSES"],
        Object.entries(r.kinds).map(([kind, k]) => [kind, k.status, k.count]),
      ),
      "",
      r.data.length === 0
        ? "no worker process answered"
        : table(
            ["ID", "STATUS", "HOST", "PID", "STARTED", "LOAD"],
            r.data.map((w) => [w.id, w.status, w.host, w.pid, w.started_at, Object.entries(w.load).map(([k, v]) => `${k}=${v}`).join(" ")]),
          ),
    ].join("\n"),
  );
}

/** `workers drain` and `workers resume`: one admin call on one worker instance. */
export async function workersControl(ctx: Ctx, action: "drain" | "resume", args: string[]) {
  const sdk = await ctx.admin();
  try {
    const reply = action === "drain" ? await sdk.admin.drainWorker(args[0]!) : await sdk.admin.resumeWorker(args[0]!);
    ctx.out.result(reply, (r) => `${action === "drain" ? "draining" : "resumed"} worker ${args[0]}: ${JSON.stringify(r)}`);
  } catch (err) {
    if (!isMissingRoute(err)) throw err;
    throw new CliError("NOT_AVAILABLE", `workers ${action} is not available on this server (${ctx.api} has no POST /api/v1/workers/{id}/${action})`);
  }
}

/** A database URL without its password, to print. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(DATABASE_URL)";
  }
}
