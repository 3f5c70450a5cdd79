import { parseArgs } from "node:util";
import { createDb, runMigrations } from "@cutroom/db";
import { isAppError } from "@cutroom/contracts";
import { createAdmin, promoteToAdmin, type AdminResult } from "./admins.ts";
import { readEnv } from "./env.ts";

const usage = `Makes admins, straight in the database (DATABASE_URL), with no service running:

  npm run admin -- create-admin --email <email> [--password <password>] [--name <full name>]
      a new account with role admin; without --password one is generated and printed
  npm run admin -- promote --email <email>
      an existing account becomes admin; it signs in again to get an admin token
`;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { email: { type: "string" }, password: { type: "string" }, name: { type: "string" }, help: { type: "boolean", short: "h" } },
});
const [command] = positionals;
if (values.help || !command || !["create-admin", "promote"].includes(command) || !values.email) {
  process.stderr.write(usage);
  process.exit(values.help ? 0 : 2);
}

const env = readEnv();
await runMigrations(env.DATABASE_URL);
const { db, close } = createDb(env.DATABASE_URL, { max: 1 });
let result: AdminResult;
try {
  result =
    command === "create-admin"
      ? await createAdmin(db, { email: values.email, password: values.password, fullName: values.name, signupCredits: env.SIGNUP_CREDITS })
      : await promoteToAdmin(db, { email: values.email, signupCredits: env.SIGNUP_CREDITS });
} catch (err) {
  const message = isAppError(err) ? `${err.message}` : (err as Error).message;
  process.stderr.write(`${command} failed: ${message}\n`);
  process.exit(1);
} finally {
  await close();
}

const { user, generatedPassword, credits, wasAdmin } = result;
const did = command === "create-admin" ? "created admin" : wasAdmin ? "already an admin" : "promoted to admin";
process.stdout.write(`${did}: ${user.email} (user id ${user.id}, ${credits} credits)\n`);
if (generatedPassword) process.stdout.write(`password: ${generatedPassword}\n`);
