import { Jwks, LoginBody, LoginForm, LogoutBody, RefreshBody, RegisterBody, RegisterReply, TokenPair, User } from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";
import { authErrors, bodyErrors, errorResponses, publicRoute } from "../plugins/openapi.ts";
import { noStore } from "../plugins/security-headers.ts";

export async function authRoutes(base: FastifyInstance, { rpc }: { rpc: RpcClient }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["auth"];

  app.post(
    "/auth/register",
    {
      schema: {
        tags,
        operationId: "register",
        summary: "Create an account (starts on the free tier with its credits)",
        ...publicRoute,
        body: RegisterBody,
        response: { 201: RegisterReply, ...errorResponses(...bodyErrors, 409, 429, 503) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return rpc.call("auth", "register", req.body, callCtx(req));
    },
  );

  // JSON {email, password}, or the OAuth2 password form (username, password) that form-based clients send.
  const Login = z.union([LoginBody, LoginForm.transform((f) => ({ email: f.username, password: f.password }))]);
  app.post(
    "/auth/login",
    {
      schema: {
        tags,
        operationId: "login",
        summary: "Sign in: an access token and a refresh token",
        ...publicRoute,
        body: Login.describe("JSON {email, password} or form fields username/password"),
        response: { 200: TokenPair, ...errorResponses(...bodyErrors, 401, 429, 503) },
      },
      onSend: noStore,
    },
    async (req) => rpc.call("auth", "login", req.body, callCtx(req)),
  );

  app.post(
    "/auth/refresh",
    {
      schema: {
        tags,
        operationId: "refreshTokens",
        summary: "Trade a refresh token for a new pair (rotating; reuse revokes the family)",
        ...publicRoute,
        body: RefreshBody,
        response: { 200: TokenPair, ...errorResponses(...bodyErrors, 401, 429, 503) },
      },
      onSend: noStore,
    },
    async (req) => rpc.call("auth", "refresh", req.body, callCtx(req)),
  );

  app.post(
    "/auth/logout",
    {
      schema: {
        tags,
        operationId: "logout",
        summary: "Revoke a refresh token, or all of the caller's",
        body: LogoutBody.optional(),
        response: { 200: z.object({ revoked: z.number().int() }), ...errorResponses(...authErrors, ...bodyErrors) },
      },
      onRequest: app.authenticate,
    },
    async (req) => rpc.call("auth", "logout", req.body ?? {}, callCtx(req)),
  );

  app.get(
    "/auth/me",
    { schema: { tags, operationId: "getMe", summary: "The signed-in user", response: { 200: User, ...errorResponses(...authErrors, 404) } }, onRequest: app.authenticate },
    async (req) => rpc.call("auth", "me", {}, callCtx(req)),
  );

  app.get(
    "/auth/jwks",
    {
      schema: {
        tags,
        operationId: "getJwks",
        summary: "Public keys that verify access tokens (JWKS)",
        ...publicRoute,
        response: { 200: Jwks, ...errorResponses(503) },
      },
    },
    async (req) => rpc.call("auth", "jwks", {}, callCtx(req)),
  );
}
