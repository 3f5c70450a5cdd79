import type { CallContext } from "@cutroom/runtime";
import type { FastifyRequest } from "fastify";

/** What every internal call carries: the request id, the verified caller and the client's address (per TRUST_PROXY). */
export const callCtx = (req: FastifyRequest): CallContext => ({ requestId: req.id, caller: req.caller, clientIp: req.ip });
