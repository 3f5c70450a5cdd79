export * from "./env.ts";
export * from "./logger.ts";
export * from "./nats.ts";
export * from "./rpc.ts";
export * from "./health.ts";
export * from "./shutdown.ts";
export * from "./job-events.ts";
export * from "./storage-replicas.ts";
