import { subjects } from "@cutroom/contracts";
import { loadCatalog, providerAvailability } from "@cutroom/models";
import type { Logger, NatsConnection } from "@cutroom/runtime";
import type { WorkerEnv } from "./env.ts";
import type { ModelService } from "./models.ts";
import { createReplicateProvider, type PredictionWakeups } from "./providers/replicate.ts";

// Any non-empty bearer will do for the emulator, which holds no credentials.
const EMULATOR_TOKEN = "cutroom-emulator";

/**
 * The worker's model layer from its env: the catalog (defaults + MODEL_CATALOG_FILE, validated now,
 * so a bad file stops the start), and Replicate, the emulator, or none.
 */
export function createModelService(env: WorkerEnv, nc: NatsConnection, log: Logger): ModelService {
  const catalog = loadCatalog({ overrideFile: env.MODEL_CATALOG_FILE });
  const provider = providerAvailability(env);
  const wakeups = env.MODEL_WEBHOOK_URL ? natsWakeups(nc, env.MODEL_WEBHOOK_URL) : undefined;
  const common = { pollIntervalMs: env.MODEL_POLL_INTERVAL_MS, wakeups };
  const client =
    provider === "replicate"
      ? createReplicateProvider({ ...common, token: env.REPLICATE_API_TOKEN!, baseUrl: env.REPLICATE_BASE_URL })
      : provider === "emulator"
        ? createReplicateProvider({ ...common, token: EMULATOR_TOKEN, baseUrl: `${env.MODEL_EMULATOR_URL!.replace(/\/+$/, "")}/v1`, name: "emulator", synthetic: true, fileEncoding: "data-uri" })
        : undefined;
  log.info({ provider, webhooks: Boolean(wakeups), catalog_file: env.MODEL_CATALOG_FILE ?? null }, "models: provider chosen");
  // Outputs come from the API's own host (the emulator serves its files) or the provider's delivery hosts.
  const apiUrl = provider === "emulator" ? env.MODEL_EMULATOR_URL! : env.REPLICATE_BASE_URL;
  const outputHosts = [new URL(apiUrl).host, ...env.MODEL_OUTPUT_HOSTS];
  return { catalog, provider, client, maxOutputBytes: env.MODEL_OUTPUT_MAX_BYTES, outputHosts };
}

/** Webhooks reach the gateway, which relays each on `models.webhook.<prediction id>`; a message only wakes the poll. */
function natsWakeups(nc: NatsConnection, url: string): PredictionWakeups {
  return {
    url,
    subscribe(id, wake) {
      const sub = nc.subscribe(subjects.modelWebhook(id), { callback: () => wake() });
      return () => sub.unsubscribe();
    },
  };
}
