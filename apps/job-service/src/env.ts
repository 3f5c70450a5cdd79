import { BaseEnv, DbEnv, loadEnv } from "@cutroom/runtime";

export const Env = BaseEnv.extend(DbEnv.shape);
export type Env = ReturnType<typeof Env.parse>;
export const readEnv = () => loadEnv(Env);
