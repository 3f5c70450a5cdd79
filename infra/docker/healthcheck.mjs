// The image's HEALTHCHECK (the image has no curl). The gateway answers GET /health/live; every other
// app answers `svc.<name>.health` over NATS, "up" only while its own dependencies (database,
// storage) are. Plain JavaScript, so a check every few seconds does not pay for tsx's start.
import { randomUUID } from "node:crypto";
import { connect } from "@nats-io/transport-node";

const TIMEOUT_MS = 3000;
const app = process.env.APP ?? "";

async function checkGateway() {
  const host = !process.env.HOST || process.env.HOST === "0.0.0.0" || process.env.HOST === "::" ? "127.0.0.1" : process.env.HOST;
  const res = await fetch(`http://${host.includes(":") ? `[${host}]` : host}:${process.env.PORT ?? "8000"}/health/live`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) throw new Error(`GET /health/live answered ${res.status}`);
}

// auth-service answers svc.auth.*; a worker answers under its own name (svc.worker-video.health).
// With NATS users, the app's own login may ask its own health, with replies on its own inbox
// prefix (packages/contracts/src/nats-permissions.ts).
async function checkOverNats() {
  const name = app.endsWith("-service") ? app.slice(0, -"-service".length) : app;
  const { NATS_URL = "nats://127.0.0.1:4222", NATS_USER: user, NATS_PASSWORD: pass } = process.env;
  const nc = await connect({
    servers: NATS_URL.split(","),
    ...(user && pass ? { user, pass, inboxPrefix: `_INBOX_${app}` } : {}),
    timeout: TIMEOUT_MS,
    maxReconnectAttempts: 0,
  });
  try {
    const msg = await nc.request(`svc.${name}.health`, JSON.stringify({ request_id: randomUUID(), caller: null, body: {} }), { timeout: TIMEOUT_MS });
    const reply = msg.json();
    if (!reply.ok) throw new Error(reply.error?.message ?? "an error reply");
    if (reply.data?.status !== "up") throw new Error(`${reply.data?.status ?? "no status"}: ${JSON.stringify(reply.data?.checks ?? {})}`);
  } finally {
    await nc.close();
  }
}

if (!app) {
  console.error("healthcheck: APP is not set");
  process.exit(1);
}
(app === "gateway" ? checkGateway() : checkOverNats()).then(
  () => process.exit(0),
  (err) => {
    console.error(`${app} unhealthy: ${err.message}`);
    process.exit(1);
  },
);
