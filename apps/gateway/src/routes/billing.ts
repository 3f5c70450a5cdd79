import { Credits, LedgerEntry, ListLedgerQuery, PurchaseBody, PurchaseReply, page } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { callCtx } from "../context.ts";
import { authErrors, bodyErrors, errorResponses } from "../plugins/openapi.ts";

export async function billingRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["billing"];
  app.addHook("onRequest", app.authenticate);

  app.get(
    "/billing/credits",
    { schema: { tags, operationId: "getCredits", summary: "The caller's credit balance, tier, limits and storage use", response: { 200: Credits, ...errorResponses(...authErrors) } } },
    async (req) => {
      const [balance, storage] = await Promise.all([
        rpc.call("billing", "balance", { user_id: req.caller!.user_id, tier: req.caller!.tier }, callCtx(req)),
        rpc.call("storage", "usage", {}, callCtx(req)),
      ]);
      return { ...balance, storage };
    },
  );

  app.get(
    "/billing/ledger",
    { schema: { tags, operationId: "listLedger", summary: "The caller's credit movements, newest first", querystring: ListLedgerQuery, response: { 200: page(LedgerEntry), ...errorResponses(...authErrors, 422) } } },
    async (req) => rpc.call("billing", "ledger", { user_id: req.caller!.user_id, ...req.query }, callCtx(req)),
  );

  app.post(
    "/billing/purchases",
    {
      schema: {
        tags,
        operationId: "createPurchase",
        summary: "Buy a credit package",
        description: "Buy a credit package (the offline `test` provider always succeeds, where it is turned on).",
        body: PurchaseBody,
        response: { 201: PurchaseReply, ...errorResponses(...authErrors, ...bodyErrors, 403) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return rpc.call("billing", "purchase", { user_id: req.caller!.user_id, package: req.body.package, payment_method: req.body.payment_method }, callCtx(req));
    },
  );
}
