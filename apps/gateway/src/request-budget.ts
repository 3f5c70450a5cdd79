import { AppError, type Caller, type Tier } from "@cutroom/contracts";
import type { FastifyReply } from "fastify";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

/**
 * Each user's budget of authenticated requests a minute, by tier (ADR 031), counted in this gateway
 * process's memory: no database round trip on any request. Behind several gateways a client may get
 * up to the budget from each. Job creation is not counted here: its per-minute limit is exact and
 * cluster-wide, taken in its own transaction (ADR 027). A tier's 0 turns its budget off.
 */
export function createRequestBudget(perMinute: Record<Tier, number>) {
  const limiters = Object.fromEntries(
    Object.entries(perMinute).map(([tier, points]) => [tier, points > 0 ? new RateLimiterMemory({ points, duration: 60, keyPrefix: `api-${tier}` }) : null]),
  ) as Record<Tier, RateLimiterMemory | null>;

  return {
    /** Takes one request of the caller's budget and sets the X-RateLimit-* headers; 429 RATE_LIMITED (with Retry-After) when it is spent. */
    async take(caller: Caller, reply: FastifyReply): Promise<void> {
      const limiter = limiters[caller.tier];
      if (!limiter) return;
      const limit = limiter.points;
      let res: RateLimiterRes;
      try {
        res = await limiter.consume(caller.user_id);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        const reset = Math.ceil((Date.now() + err.msBeforeNext) / 1000);
        throw new AppError("RATE_LIMITED", `the ${caller.tier} tier allows ${limit} requests per minute`, { limit, remaining: 0, reset });
      }
      reply.header("x-ratelimit-limit", limit);
      reply.header("x-ratelimit-remaining", res.remainingPoints);
      reply.header("x-ratelimit-reset", Math.ceil((Date.now() + res.msBeforeNext) / 1000));
    },
  };
}

export type RequestBudget = ReturnType<typeof createRequestBudget>;
