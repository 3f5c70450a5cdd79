export * from "./tools.ts";
export * from "./wait.ts";
export * from "./servers.ts";
export * from "./nats-auth.ts";
export * from "./services.ts";
export * from "./stack.ts";
export * from "./database.ts";
export * from "./start-env.ts";
