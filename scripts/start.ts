// `npm start`: the whole stack on one machine, data kept in .data/ between runs.
// Every port and URL follows from PORT and HOST (packages/devstack/src/start-env.ts).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { StartEnv, allApps, assertPortsFree, createNatsLogins, ensureTools, modelStackEnv, modelsBanner, newWebhookSecret, startNats, startPostgres, startServices, superviseServer, type SuperviseOptions } from "@cutroom/devstack";

const root = join(import.meta.dirname, "..");
const parsed = StartEnv.safeParse(process.env);
if (!parsed.success) {
  for (const issue of parsed.error.issues) console.error(`config: ${issue.path.join(".")}: ${issue.message}`);
  process.exit(1);
}
const env = parsed.data;
const data = resolve(env.CUTROOM_DATA_DIR ?? join(root, ".data"));
const { ports, publicUrl } = env;

// What runs, in start order. Supervision may give up while the stack is still starting, so stop()
// works from this list rather than from the constants below.
const running: { stop: () => Promise<void> }[] = [];
let stopping = false;
async function stop(message: string, code: number, failed?: string) {
  if (stopping) return;
  stopping = true;
  (code ? console.error : console.log)(message);
  if (failed) console.error(`stopping the stack: ${failed} could not be kept running`);
  for (const server of running.reverse()) await server.stop();
  process.exit(code);
}

await assertPortsFree(ports, env.HOST).catch((err: Error) => {
  console.error(`cannot start: ${err.message}`);
  process.exit(1);
});

const { pgBin } = ensureTools();
// Every process is restarted when it dies on its own (backoff 0.5 s doubling to 10 s); one that keeps
// dying stops the whole stack with a non-zero exit, so a broken stack never looks like a running one.
const supervise: SuperviseOptions = {
  onRestart: (name, reason, delayMs) => console.error(`${name} exited (${reason}); restarting it in ${delayMs / 1000} s`),
  onGiveUp: (name, message) => void stop(`\nCUTROOM STOPPED: ${message}`, 1, name),
};
const pgLog = join(data, "logs", "postgres.log");
const pg = await superviseServer("postgres", () => startPostgres({ pgBin, dataDir: join(data, "pg"), port: ports.CUTROOM_PG_PORT, database: "cutroom", logFile: pgLog }), { ...supervise, logFile: pgLog }).catch((err: Error) => {
  console.error(`could not start postgres: ${err.message}`);
  process.exit(1);
});
running.push(pg);
console.log(`postgres  ${pg.url}`);
// A NATS user per app, limited to its subjects; the passwords are kept with the data.
const natsLoginsFile = join(data, "nats-logins.json");
const natsLog = join(data, "logs", "nats-server.log");
const natsLogins = createNatsLogins(natsLoginsFile);
const nats = await superviseServer("nats-server", () => startNats({ storeDir: join(data, "nats"), port: ports.CUTROOM_NATS_PORT, logins: natsLogins, logFile: natsLog }), { ...supervise, logFile: natsLog }).catch(async (err) => {
  console.error(`could not start nats-server: ${(err as Error).message}`);
  await pg.stop();
  process.exit(1);
});
running.push(nats);
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
    // The gateway takes it; startServices gives every other process a free port of its own (logged).
    ...(process.env.METRICS_PORT ? { METRICS_PORT: process.env.METRICS_PORT } : {}),
    ...modelEnv,
    ...(emulatorUrl ? { MODEL_EMULATOR_PORT: String(emulatorPort), MODEL_EMULATOR_HOST: "127.0.0.1", MODEL_EMULATOR_PUBLIC_URL: emulatorUrl, MODEL_EMULATOR_DIR: join(data, "model-emulator") } : {}),
  },
  echo: quiet ? undefined : (app, line) => console.log(`[${app}] ${line}`),
  supervise,
}).catch(async (err) => {
  console.error(`could not start the services: ${(err as Error).message}`);
  await nats.stop();
  await pg.stop();
  process.exit(1);
});

running.push({ stop: services.stopAll });

const exposed = env.HOST === "127.0.0.1" || env.HOST === "localhost" || env.HOST === "::1" ? "this machine only; HOST=0.0.0.0 to expose" : `bound to ${env.HOST}`;
// One write: whoever reads up to "Cutroom is up" (a script, a test) has the lines under it as well.
console.log(
  [`\nCutroom is up: ${publicUrl}   (API /api/v1, docs /docs, health /health; ${exposed})`, modelsBanner(modelEnv), `logs in ${join(data, "logs")}; Ctrl-C stops everything.\n`].join("\n"),
);

process.on("SIGINT", () => stop("stopping…", 0));
process.on("SIGTERM", () => stop("stopping…", 0));

/** A secret made once and kept with the data (mode 0600), so what it signs survives a restart. */
function keptSecret(dir: string, name: string, make: () => string): string {
  const file = join(dir, name);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, make() + "\n", { mode: 0o600, flag: "wx" });
  }
  return readFileSync(file, "utf8").trim();
}
