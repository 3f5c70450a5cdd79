// `npx tsx scripts/nats-config.ts <logins.json>`: prints the nats-server `authorization` block (a user per
// app with its permissions, and the admin) for a server npm start does not run, e.g. infra/. The logins file
// is made on first use and read after, so the config and the apps' NATS_USER/NATS_PASSWORD stay in step.
import { resolve } from "node:path";
import { createNatsLogins, natsAuthConfig } from "@cutroom/devstack";

const file = process.argv[2];
if (!file) {
  console.error("usage: npx tsx scripts/nats-config.ts <logins.json>   (made when missing; give each app its user and password)");
  process.exit(2);
}
process.stdout.write(natsAuthConfig(createNatsLogins(resolve(file))));
