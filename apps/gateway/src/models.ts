import { defaultCatalog, loadCatalog, providerAvailability, type Catalog, type ModelProviderName } from "@cutroom/models";
import type { Env } from "./env.ts";

/** What the gateway knows of the model layer: no token, only who serves, the catalog, and the webhook key. */
export interface GatewayModels {
  catalog: Catalog;
  provider: ModelProviderName;
  emulatorUrl?: string;
  webhookSecret?: string;
}

export function gatewayModels(env: Env): GatewayModels {
  return {
    catalog: loadCatalog({ overrideFile: env.MODEL_CATALOG_FILE }),
    provider: providerAvailability(env),
    emulatorUrl: env.MODEL_EMULATOR_URL,
    webhookSecret: env.REPLICATE_WEBHOOK_SECRET,
  };
}

export const noGatewayModels = (): GatewayModels => ({ catalog: defaultCatalog(), provider: "none" });
