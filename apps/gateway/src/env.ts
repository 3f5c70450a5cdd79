import { z } from "zod";
import { BaseEnv, loadEnv } from "@cutroom/runtime";

export const Env = BaseEnv.extend({
  /** Where the public HTTP API listens. */
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  /** Interface to bind; 0.0.0.0 serves other machines too. */
  HOST: z.string().default("0.0.0.0"),
  /** storage-service's HTTP data plane, proxied at /storage/* for fs-driver signed URLs and streamed uploads. */
  STORAGE_INTERNAL_URL: z.string().url().default("http://127.0.0.1:8001"),
  /** Largest JSON body accepted, in bytes. */
  BODY_LIMIT_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
});
export type Env = z.output<typeof Env>;
export const readEnv = () => loadEnv(Env);
