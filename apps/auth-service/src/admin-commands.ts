import { createDb, runMigrations } from "@cutroom/db";
import { createAdmin, promoteToAdmin } from "./admins.ts";

export type AdminCommand = "create-admin" | "promote";
export const adminCommands: readonly AdminCommand[] = ["create-admin", "promote"];

/** What an operator's command did, as `cutroom … --json` prints it. */
export interface AdminCommandResult {
  action: "created" | "promoted" | "already_admin";
  user_id: string;
  email: string;
  credits: number;
  /** The generated password of a new account, when none was given. */
  password?: string;
}

/**
 * `npm run admin` and `cutroom create-admin` / `cutroom promote`: straight in the database, with no
 * service running, after applying the migrations (a first admin may come before the first start).
 */
export async function runAdminCommand(
  command: AdminCommand,
  opts: { email: string; password?: string; name?: string },
  env: { DATABASE_URL: string; SIGNUP_CREDITS: number },
): Promise<AdminCommandResult> {
  await runMigrations(env.DATABASE_URL);
  const { db, close } = createDb(env.DATABASE_URL, { max: 1 });
  try {
    if (command === "create-admin") {
      const r = await createAdmin(db, { email: opts.email, password: opts.password, fullName: opts.name, signupCredits: env.SIGNUP_CREDITS });
      return { action: "created", user_id: r.user.id, email: r.user.email, credits: r.credits, ...(r.generatedPassword ? { password: r.generatedPassword } : {}) };
    }
    const r = await promoteToAdmin(db, { email: opts.email, signupCredits: env.SIGNUP_CREDITS });
    return { action: r.wasAdmin ? "already_admin" : "promoted", user_id: r.user.id, email: r.user.email, credits: r.credits };
  } finally {
    await close();
  }
}

/** The lines a person reads. */
export function describeAdminCommand(r: AdminCommandResult): string {
  const did = { created: "created admin", promoted: "promoted to admin", already_admin: "already an admin" }[r.action];
  return `${did}: ${r.email} (user id ${r.user_id}, ${r.credits} credits)\n${r.password ? `password: ${r.password}\n` : ""}`;
}
