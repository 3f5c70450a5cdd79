// `npm start`: the whole stack on one machine, data kept in .data/ between runs.
import { join } from "node:path";
import { ensureTools, startNats, startPostgres, startServices } from "@cutroom/devstack";

const root = join(import.meta.dirname, "..");
const data = join(root, ".data");
const port = process.env.PORT ?? "8000";
const pgPort = Number(process.env.CUTROOM_PG_PORT ?? 55432);
const natsPort = Number(process.env.CUTROOM_NATS_PORT ?? 4222);

const { pgBin } = ensureTools();
const pg = await startPostgres({ pgBin, dataDir: join(data, "pg"), port: pgPort, database: "cutroom" });
console.log(`postgres  ${pg.url}`);
const nats = await startNats({ storeDir: join(data, "nats"), port: natsPort }).catch(async (err) => {
  console.error(`could not start nats-server: ${(err as Error).message}`);
  await pg.stop();
  process.exit(1);
});
console.log(`nats      ${nats.url} (JetStream)`);

const quiet = process.env.LOG_LEVEL === undefined;
const services = await startServices({
  root,
  logDir: join(data, "logs"),
  env: {
    PORT: port,
    DATABASE_URL: pg.url,
    NATS_URL: nats.url,
    STORAGE_DIR: join(data, "storage"),
    LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
  },
  echo: quiet ? undefined : (app, line) => console.log(`[${app}] ${line}`),
}).catch(async (err) => {
  console.error(`could not start the services: ${(err as Error).message}`);
  await nats.stop();
  await pg.stop();
  process.exit(1);
});

console.log(`\nCutroom is up: http://localhost:${port}   (API /api/v1, docs /docs, health /health)`);
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
