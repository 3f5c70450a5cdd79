import { Credits, LedgerEntry, ListLedgerQuery, PurchaseBody, PurchaseReply, page } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { callCtx } from "../context.ts";

export async function billingRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["billing"];
  app.addHook("onRequest", app.authenticate);

  app.get("/billing/credits", { schema: { tags, response: { 200: Credits } } }, async (req) =>
    rpc.call("billing", "balance", { user_id: req.caller!.user_id, tier: req.caller!.tier }, callCtx(req)),
  );

  app.get("/billing/ledger", { schema: { tags, querystring: ListLedgerQuery, response: { 200: page(LedgerEntry) } } }, async (req) =>
    rpc.call("billing", "ledger", { user_id: req.caller!.user_id, ...req.query }, callCtx(req)),
  );

  app.post(
    "/billing/purchases",
    { schema: { tags, description: "Buy a credit package (the offline `test` provider always succeeds).", body: PurchaseBody, response: { 201: PurchaseReply } } },
    async (req, reply) => {
      reply.code(201);
      return rpc.call("billing", "purchase", { user_id: req.caller!.user_id, package: req.body.package, payment_method: req.body.payment_method }, callCtx(req));
    },
  );
}
