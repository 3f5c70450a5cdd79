import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const root = join(import.meta.dirname, "..", "..", "..");

/**
 * Makes `email` an admin of a stack as an operator does, with auth-service's CLI (`npm run admin`)
 * on the stack's database: with a password it creates the account, without it promotes an
 * existing one. Returns what the command printed.
 */
export async function makeAdmin(stack: { databaseUrl: string }, email: string, opts: { password?: string } = {}): Promise<string> {
  const args = opts.password === undefined ? ["promote", "--email", email] : ["create-admin", "--email", email, "--password", opts.password];
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", join(root, "apps", "auth-service", "src", "cli.ts"), ...args], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: stack.databaseUrl, LOG_LEVEL: "warn" },
      timeout: 60_000,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`npm run admin -- ${args.slice(0, 3).join(" ")} failed: ${e.stderr?.trim() || e.message}`);
  }
}
