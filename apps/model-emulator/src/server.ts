import { createLogger, onShutdown, signalReady } from "@cutroom/runtime";
import { buildApp } from "./app.ts";
import { readEnv } from "./env.ts";

const env = readEnv();
const log = createLogger("model-emulator", env.LOG_LEVEL);

const app = await buildApp({
  log,
  dir: env.MODEL_EMULATOR_DIR,
  publicUrl: env.MODEL_EMULATOR_PUBLIC_URL,
  webhookSecret: env.MODEL_EMULATOR_WEBHOOK_SECRET,
  concurrency: env.MODEL_EMULATOR_CONCURRENCY,
  retentionMs: env.MODEL_EMULATOR_RETENTION_MINUTES * 60_000,
});
await app.listen({ port: env.MODEL_EMULATOR_PORT, host: env.MODEL_EMULATOR_HOST });
onShutdown(log, [() => app.close()]);
const address = app.server.address();
const port = typeof address === "object" && address ? address.port : env.MODEL_EMULATOR_PORT;
const host = ["0.0.0.0", "::"].includes(env.MODEL_EMULATOR_HOST) ? "127.0.0.1" : env.MODEL_EMULATOR_HOST;
// The devstack waits for this message; `url` is where the replicate client's baseUrl (plus /v1) points.
signalReady(log, { url: env.MODEL_EMULATOR_PUBLIC_URL ?? `http://${host.includes(":") ? `[${host}]` : host}:${port}`, synthetic: true });
