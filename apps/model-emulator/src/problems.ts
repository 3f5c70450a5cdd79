import type { FastifyReply } from "fastify";

/** An error as Replicate's API answers one (RFC 7807 problem details), which the `replicate` client shows. */
export interface Problem {
  status: number;
  title: string;
  detail: string;
  invalid_fields?: Array<{ type: string; field: string; description: string }>;
}

export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

export const sendProblem = (reply: FastifyReply, problem: Problem) => reply.code(problem.status).type("application/problem+json").send(JSON.stringify(problem));

export const notFound = (detail = "The requested resource could not be found.") => new ProblemError({ status: 404, title: "Not found", detail });

export const invalid = (title: string, detail: string, invalid_fields?: Problem["invalid_fields"]) =>
  new ProblemError({ status: 422, title, detail, ...(invalid_fields ? { invalid_fields } : {}) });
