import { Jwks, LoginBody, LoginForm, LogoutBody, RefreshBody, RegisterBody, RegisterReply, TokenPair, User } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";

export async function authRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["auth"];

  app.post("/auth/register", { schema: { tags, body: RegisterBody, response: { 201: RegisterReply } } }, async (req, reply) => {
    reply.code(201);
    return rpc.call("auth", "register", req.body, callCtx(req));
  });

  // JSON {email, password}, or the OAuth2 password form (username, password) that form-based clients send.
  const Login = z.union([LoginBody, LoginForm.transform((f) => ({ email: f.username, password: f.password }))]);
  app.post(
    "/auth/login",
    { schema: { tags, body: Login.describe("JSON {email, password} or form fields username/password"), response: { 200: TokenPair } } },
    async (req) => rpc.call("auth", "login", req.body, callCtx(req)),
  );

  app.post("/auth/refresh", { schema: { tags, body: RefreshBody, response: { 200: TokenPair } } }, async (req) =>
    rpc.call("auth", "refresh", req.body, callCtx(req)),
  );

  app.post(
    "/auth/logout",
    { schema: { tags, body: LogoutBody.optional(), response: { 200: z.object({ revoked: z.number().int() }) } }, onRequest: app.authenticate },
    async (req) => rpc.call("auth", "logout", req.body ?? {}, callCtx(req)),
  );

  app.get("/auth/me", { schema: { tags, response: { 200: User } }, onRequest: app.authenticate }, async (req) => rpc.call("auth", "me", {}, callCtx(req)));

  app.get("/auth/jwks", { schema: { tags, description: "Public keys that verify access tokens", response: { 200: Jwks } } }, async (req) =>
    rpc.call("auth", "jwks", {}, callCtx(req)),
  );
}
