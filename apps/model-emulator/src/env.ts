import { fileURLToPath } from "node:url";
import { z } from "zod";
import { BaseEnv, loadEnv } from "@cutroom/runtime";

// An outside API's stand-in: it reads no NATS, database or Cutroom secret, only where to listen and keep files.
export const Env = BaseEnv.pick({ LOG_LEVEL: true }).extend({
  /** Where the emulated Replicate API listens (npm start uses PORT+4). */
  MODEL_EMULATOR_PORT: z.coerce.number().int().min(0).max(65535).default(8004),
  /** Interface to bind: localhost only by default. */
  MODEL_EMULATOR_HOST: z.string().default("127.0.0.1"),
  /** Base of the output URLs it hands out (`<base>/files/<prediction>/<name>`); unset means the address it listens on. */
  MODEL_EMULATOR_PUBLIC_URL: z
    .url()
    .optional()
    .transform((u) => u?.replace(/\/+$/, "")),
  /** Where prediction outputs are kept (default: the repo's .data/model-emulator). */
  MODEL_EMULATOR_DIR: z.string().default(fileURLToPath(new URL("../../../.data/model-emulator", import.meta.url))),
  /** Signing key of webhooks, `whsec_<base64>` as Replicate's (GET /v1/webhooks/default/secret returns it); a fixed development key by default, since the emulator guards nothing. */
  MODEL_EMULATOR_WEBHOOK_SECRET: z.string().min(1).default("whsec_Y3V0cm9vbS1tb2RlbC1lbXVsYXRvci1kZXYta2V5"),
  /** Predictions that run at once; the rest wait in `starting`, as on a busy Replicate. */
  MODEL_EMULATOR_CONCURRENCY: z.coerce.number().int().positive().default(4),
  /** Minutes a finished prediction's files and data are kept (Replicate removes API outputs after an hour). */
  MODEL_EMULATOR_RETENTION_MINUTES: z.coerce.number().int().positive().default(60),
});
export type Env = z.output<typeof Env>;
export const readEnv = () => loadEnv(Env);
