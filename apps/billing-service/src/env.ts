import { BaseEnv, DbEnv, envFlag, loadEnv } from "@cutroom/runtime";
import type { z } from "zod";

export const Env = BaseEnv.extend(DbEnv.shape)
  .extend({
    /** Lets POST /billing/purchases add credits through the offline `test` provider, without payment. Development and tests only. */
    BILLING_TEST_PURCHASES: envFlag(false),
  })
  .refine((env) => !(env.NODE_ENV === "production" && env.BILLING_TEST_PURCHASES), {
    path: ["BILLING_TEST_PURCHASES"],
    message: "test purchases hand out credits for free: they cannot be enabled with NODE_ENV=production",
  });
export type Env = z.output<typeof Env>;
export const readEnv = () => loadEnv(Env);
