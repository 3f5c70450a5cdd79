import type { CallContext } from "@cutroom/runtime";
import type { FastifyRequest } from "fastify";

/** What every internal call carries: the request id and the verified caller. */
export const callCtx = (req: FastifyRequest): CallContext => ({ requestId: req.id, caller: req.caller });
