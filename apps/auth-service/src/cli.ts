import { parseArgs } from "node:util";
import { isAppError } from "@cutroom/contracts";
import { adminCommands, describeAdminCommand, runAdminCommand, type AdminCommand } from "./admin-commands.ts";
import { readEnv } from "./env.ts";

// `cutroom create-admin` / `cutroom promote` (packages/cli) run the same runAdminCommand.
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
if (values.help || !command || !adminCommands.includes(command as AdminCommand) || !values.email) {
  process.stderr.write(usage);
  process.exit(values.help ? 0 : 2);
}

try {
  const result = await runAdminCommand(command as AdminCommand, { email: values.email, password: values.password, name: values.name }, readEnv());
  process.stdout.write(describeAdminCommand(result));
} catch (err) {
  const message = isAppError(err) ? `${err.message}` : (err as Error).message;
  process.stderr.write(`${command} failed: ${message}\n`);
  process.exit(1);
}
