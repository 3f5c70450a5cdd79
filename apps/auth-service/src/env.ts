import { BaseEnv, DbEnv, loadEnv } from "@cutroom/runtime";
import { z } from "zod";

export const Env = BaseEnv.extend(DbEnv.shape).extend({
  /** Lifetime of an access token (JWT); short, because a signed token cannot be revoked. */
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().positive().default(900),
  /** Lifetime of a refresh token; each refresh rotates it and starts this clock again. */
  REFRESH_TOKEN_TTL_SECONDS: z.coerce.number().int().positive().default(30 * 24 * 60 * 60),
  /** Comma-separated emails that get role "admin" when they register: how the first admin exists. */
  BOOTSTRAP_ADMIN_EMAILS: z
    .string()
    .default("")
    .transform((s) => s.split(",").map((e) => e.trim().toLowerCase()).filter(Boolean)),
});
export type Env = z.output<typeof Env>;
export const readEnv = () => loadEnv(Env);
