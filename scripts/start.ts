// `npm start`: the whole stack on one machine, data kept in .data/ between runs.
// Every port and URL follows from PORT and HOST (packages/devstack/src/start-env.ts).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { StartEnv, allApps, assertPortsFree, createNatsLogins, ensureTools, modelStackEnv, modelsBanner, newWebhookSecret, startNats, startPostgres, startServices } from "@cutroom/devstack";

const root = join(import.meta.dirname, "..");
const parsed = StartEnv.safeParse(process.env);
if (!parsed.success) {
  for (const issue of parsed.error.issues) console.error(`config: ${issue.path.join(".")}: ${issue.message}`);
  process.exit(1);
}
const env = parsed.data;
const data = resolve(env.CUTROOM_DATA_DIR ?? join(root, ".data"));
const { ports, publicUrl } = env;

await assertPortsFree(ports, env.HOST).catch((err: Error) => {
  console.error(`cannot start: ${err.message}`);
  process.exit(1);
});

const { pgBin } = ensureTools();
const pg = await startPostgres({ pgBin, dataDir: join(data, "pg"), port: ports.CUTROOM_PG_PORT, database: "cutroom" }).catch((err: Error) => {
  console.error(`could not start postgres: ${err.message}`);
  process.exit(1);
});
console.log(`postgres  ${pg.url}`);
// A NATS user per app, limited to its subjects; the passwords are kept with the data.
const natsLoginsFile = join(data, "nats-logins.json");
const nats = await startNats({ storeDir: join(data, "nats"), port: ports.CUTROOM_NATS_PORT, logins: createNatsLogins(natsLoginsFile), logFile: join(data, "logs", "nats-server.log") }).catch(async (err) => {
  console.error(`could not start nats-server: ${(err as Error).message}`);
  await pg.stop();
  process.exit(1);
});
console.log(`nats      ${nats.url} (JetStream; a user per app, logins in ${natsLoginsFile})`);

// Without a token, the emulator stands in for Replicate (synthetic outputs) on PORT+4.
const emulatorPort = ports.MODEL_EMULATOR_PORT;
const emulatorUrl = emulatorPort ? `http://127.0.0.1:${emulatorPort}` : undefined;
const modelEnv = modelStackEnv({
  replicateToken: env.REPLICATE_API_TOKEN,
  emulatorUrl,
  // Replicate reaches the gateway only at an address set on purpose; the emulator runs beside it.
  webhookBaseUrl: env.REPLICATE_API_TOKEN && !env.CUTROOM_PUBLIC_URL ? undefined : publicUrl,
  webhookSecret: env.REPLICATE_API_TOKEN ? env.REPLICATE_WEBHOOK_SECRET : keptSecret(data, "model-webhook-secret", newWebhookSecret),
});

const quiet = env.LOG_LEVEL === undefined;
const services = await startServices({
  root,
  apps: allApps.filter((app) => app !== "model-emulator" || emulatorUrl),
  logDir: join(data, "logs"),
  natsLogins: nats.logins,
  env: {
    NODE_ENV: "development",
    PORT: String(ports.PORT),
    HOST: env.HOST,
    DATABASE_URL: pg.url,
    NATS_URL: nats.url,
    STORAGE_DIR: join(data, "storage"),
    STORAGE_PORT: String(ports.STORAGE_PORT),
    STORAGE_INTERNAL_URL: `http://127.0.0.1:${ports.STORAGE_PORT}`,
    STORAGE_PUBLIC_URL: `${publicUrl}/storage`,
    STORAGE_URL_SECRET: keptSecret(data, "storage-url-secret", () => randomBytes(32).toString("hex")),
    LOG_LEVEL: env.LOG_LEVEL ?? "info",
    ...modelEnv,
    ...(emulatorUrl ? { MODEL_EMULATOR_PORT: String(emulatorPort), MODEL_EMULATOR_HOST: "127.0.0.1", MODEL_EMULATOR_PUBLIC_URL: emulatorUrl, MODEL_EMULATOR_DIR: join(data, "model-emulator") } : {}),
  },
  echo: quiet ? undefined : (app, line) => console.log(`[${app}] ${line}`),
}).catch(async (err) => {
  console.error(`could not start the services: ${(err as Error).message}`);
  await nats.stop();
  await pg.stop();
  process.exit(1);
});

const exposed = env.HOST === "127.0.0.1" || env.HOST === "localhost" || env.HOST === "::1" ? "this machine only; HOST=0.0.0.0 to expose" : `bound to ${env.HOST}`;
console.log(`\nCutroom is up: ${publicUrl}   (API /api/v1, docs /docs, health /health; ${exposed})`);
console.log(modelsBanner(modelEnv));
console.log(`logs in ${join(data, "logs")}; Ctrl-C stops everything.\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log("stopping…");
  await services.stopAll();
  await nats.stop();
  await pg.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

/** A secret made once and kept with the data (mode 0600), so what it signs survives a restart. */
function keptSecret(dir: string, name: string, make: () => string): string {
  const file = join(dir, name);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, make() + "\n", { mode: 0o600, flag: "wx" });
  }
  return readFileSync(file, "utf8").trim();
}
