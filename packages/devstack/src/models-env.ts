import { randomBytes } from "node:crypto";

/** A webhook signing key as Replicate shows it (`whsec_<base64>`), shared by the emulator and the gateway of one stack. */
export const newWebhookSecret = () => `whsec_${randomBytes(24).toString("base64")}`;

export interface ModelStackOptions {
  /** Set: Replicate runs the hosted models, and the emulator is not started. */
  replicateToken?: string;
  /** The emulator's base URL, when the stack runs it. */
  emulatorUrl?: string;
  /** The gateway's base URL as the provider reaches it: set, predictions ask for webhooks. */
  webhookBaseUrl?: string;
  /** Replicate's webhook signing key (REPLICATE_WEBHOOK_SECRET), or the emulator's. */
  webhookSecret?: string;
}

/**
 * The model layer's variables for every app of a stack: which provider serves (MODEL_PROVIDER for
 * job-service and the gateway, which hold no token), the emulator's URL for workers, and webhooks
 * when the gateway can be reached and can check their signature.
 */
export function modelStackEnv(opts: ModelStackOptions): Record<string, string> {
  const provider = opts.replicateToken ? "replicate" : opts.emulatorUrl ? "emulator" : "none";
  const env: Record<string, string> = {
    MODEL_PROVIDER: provider,
    // A token in the caller's environment must not reach a stack meant to use the emulator or none.
    REPLICATE_API_TOKEN: opts.replicateToken ?? "",
  };
  if (provider === "emulator") env.MODEL_EMULATOR_URL = opts.emulatorUrl!;
  if (provider !== "none" && opts.webhookBaseUrl && opts.webhookSecret) {
    env.MODEL_WEBHOOK_URL = `${opts.webhookBaseUrl.replace(/\/+$/, "")}/api/v1/webhooks/replicate`;
    env.REPLICATE_WEBHOOK_SECRET = opts.webhookSecret;
    if (provider === "emulator") env.MODEL_EMULATOR_WEBHOOK_SECRET = opts.webhookSecret;
  }
  return env;
}

/** What `npm start` prints about the models. */
export function modelsBanner(env: Record<string, string>): string {
  if (env.MODEL_PROVIDER === "replicate") return `models: Replicate${env.MODEL_WEBHOOK_URL ? ` (webhooks at ${env.MODEL_WEBHOOK_URL})` : " (polling)"}`;
  if (env.MODEL_PROVIDER === "emulator") return `models: emulator (synthetic outputs) at ${env.MODEL_EMULATOR_URL}; set REPLICATE_API_TOKEN for real models`;
  return "models: none (only local engines run); set REPLICATE_API_TOKEN";
}
