import {
  AppError,
  CompleteBody,
  CreateOutputBody,
  FailBody,
  FileObject,
  FinishedLease,
  HeartbeatBody,
  InputUrl,
  LeaseBody,
  LeaseState,
  OutputTicket,
  Uuid,
  WorkerEventsBody,
  WorkerEventsReply,
  WorkerLease,
  type WorkerIdentity,
} from "@cutroom/contracts";
import type { RpcClient } from "@cutroom/runtime";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { callCtx } from "../context.ts";
import { bearerToken } from "../plugins/auth.ts";
import { type HttpWorkerRecorder, httpWorkerId, workerInstanceHeader } from "../http-worker-registry.ts";
import type { WorkerRegistry } from "../worker-registry.ts";
import { bodyErrors, errorResponses } from "../plugins/openapi.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The worker token's holder, on /worker routes (ADR 040). */
    worker: WorkerIdentity | null;
  }
}

// How often a long poll asks for a job again: a job created meanwhile waits this long at most (ADR 040).
const LEASE_POLL_MS = 250;
const WORKER_TOKEN_PREFIX = "cwk_";

const LeaseParams = z.object({ lease_id: Uuid });
const LeaseFileParams = LeaseParams.extend({ file_id: Uuid });
const workerErrors = [401, 403, 503] as const;
const leaseErrors = [...workerErrors, 404, 409] as const;

/**
 * Workers over HTTP (ADR 040; protocol in docs/WORKER-API.md): a machine holding a worker token leases
 * jobs of its token's types, reports as it runs, moves files through signed URLs and ends the job. A
 * user's access token is refused here, and a worker token everywhere else (it is not a JWT).
 */
export async function workerApiRoutes(base: FastifyInstance, { rpc, httpWorkers, workers }: { rpc: RpcClient; httpWorkers?: HttpWorkerRecorder; workers?: Pick<WorkerRegistry, "draining"> }) {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ["workers over HTTP"];
  app.decorateRequest("worker", null);
  // Verified by auth-service on every request, so a revoked token is refused from the next one on.
  app.addHook("onRequest", async (req) => {
    const token = bearerToken(req);
    if (!token) throw new AppError("UNAUTHORIZED", "a Bearer worker token is required");
    if (!token.startsWith(WORKER_TOKEN_PREFIX)) throw new AppError("UNAUTHORIZED", "this API takes a worker token (an admin makes one at POST /api/v1/admin/worker-tokens), not a user's access token");
    req.worker = await rpc.call("auth", "verifyWorkerToken", { token }, { requestId: req.id });
  });
  const worker = (req: FastifyRequest) => req.worker!;
  // Who is calling, for the worker registry (kind http): the header names the instance, else the lease body or its lease does.
  const caller = (req: FastifyRequest, leaseName?: string) => {
    const header = req.headers[workerInstanceHeader];
    const named = typeof header === "string" && header.trim() ? header.trim().slice(0, 100) : undefined;
    const leaseId = (req.params as { lease_id?: string } | undefined)?.lease_id;
    return { worker: worker(req), instance: named ?? leaseName ?? (leaseId ? httpWorkers?.instanceOf(leaseId) : undefined), ip: req.ip };
  };
  // Every authenticated call under a lease counts as the instance's heartbeat; the lease route notes its own.
  app.addHook("preHandler", async (req) => {
    if (httpWorkers && req.worker && (req.params as { lease_id?: string } | undefined)?.lease_id) httpWorkers.seen(caller(req));
  });
  const links = (leaseId: string) => {
    const at = `/api/v1/worker/leases/${leaseId}`;
    return { heartbeat: `${at}/heartbeat`, events: `${at}/events`, inputs: `${at}/inputs/{file_id}`, outputs: `${at}/outputs`, complete: `${at}/complete`, fail: `${at}/fail` };
  };

  app.post(
    "/worker/lease",
    {
      schema: {
        tags,
        operationId: "leaseJob",
        summary: "Lease the next job of the given types (long poll)",
        description:
          "Waits up to wait_s for a queued job of one of job_types (each within the token's scope, else 403) and claims it for lease_s (at most the server's job lease). 200 with the lease; 204 when none came, and at once while an admin has drained this worker instance (POST /workers/{id}/drain; its leases in hand keep working). The lease is the job's claim: renew it with heartbeats or events; once it runs out the job goes back for another worker, and the calls under this lease's links are refused with LEASE_LOST (documented on each of them; this call never answers it).",
        body: LeaseBody,
        response: { 200: WorkerLease, 204: z.null().describe("no job of these types came within wait_s"), ...errorResponses(...workerErrors, ...bodyErrors) },
      },
    },
    async (req, reply) => {
      const { job_types, lease_s, wait_s, worker: name } = req.body;
      const until = Date.now() + wait_s * 1000;
      const who = caller(req, name);
      const id = httpWorkerId(who);
      for (;;) {
        // Each poll of a long wait counts: an idle worker waiting for jobs stays healthy.
        httpWorkers?.seen(who);
        // Drained (in its registry record, shared by every gateway): no job, and no long poll to hold either.
        if (workers?.draining(id)) break;
        // The lease is recorded under the instance's name, the one in_flight is counted by (job.workerInFlight).
        const { lease } = await rpc.call(
          "job",
          "workerLease",
          { job_types, ...(lease_s !== undefined ? { lease_s } : {}), ...(who.instance ? { name: who.instance } : {}), worker: worker(req) },
          callCtx(req),
        );
        if (lease) {
          httpWorkers?.leased(who, lease.lease_id, lease.expires_at);
          return { ...lease, links: links(lease.lease_id) };
        }
        // A client that went away is not handed a job it would only hold until its lease ran out.
        if (Date.now() + LEASE_POLL_MS > until || req.raw.socket.destroyed) break;
        await new Promise((r) => setTimeout(r, LEASE_POLL_MS));
      }
      return reply.code(204).send(null);
    },
  );

  app.post(
    "/worker/leases/:lease_id/heartbeat",
    {
      schema: { tags, operationId: "renewLease", summary: "Renew a lease", params: LeaseParams, body: HeartbeatBody, response: { 200: LeaseState, ...errorResponses(...leaseErrors, ...bodyErrors) } },
    },
    async (req) => {
      const state = await rpc.call("job", "workerHeartbeat", { lease_id: req.params.lease_id, worker: worker(req), ...(req.body.lease_s !== undefined ? { lease_s: req.body.lease_s } : {}) }, callCtx(req));
      httpWorkers?.renewed(state.lease_id, state.expires_at);
      return state;
    },
  );

  app.post(
    "/worker/leases/:lease_id/events",
    {
      schema: {
        tags,
        operationId: "reportLeaseEvents",
        summary: "Report progress, stages and log lines",
        description: "Each becomes one of the job's events (what its owner sees over WebSocket and SSE), as a NATS worker's report does, and renews the lease.",
        params: LeaseParams,
        body: WorkerEventsBody,
        response: { 200: WorkerEventsReply, ...errorResponses(...leaseErrors, ...bodyErrors) },
      },
    },
    async (req) => rpc.call("job", "workerEvents", { lease_id: req.params.lease_id, worker: worker(req), events: req.body.events }, callCtx(req)),
  );

  app.get(
    "/worker/leases/:lease_id/inputs/:file_id",
    {
      schema: { tags, operationId: "getLeaseInput", summary: "A fresh signed download URL of one of the job's input files", params: LeaseFileParams, response: { 200: InputUrl, ...errorResponses(...leaseErrors) } },
    },
    async (req) => rpc.call("job", "workerInput", { lease_id: req.params.lease_id, worker: worker(req), file_id: req.params.file_id }, callCtx(req)),
  );

  app.post(
    "/worker/leases/:lease_id/outputs",
    {
      schema: {
        tags,
        operationId: "createLeaseOutput",
        summary: "Where to upload an output file",
        description: "A signed PUT URL (send the headers given) for one output of the job; the same filename always names the same file. POST confirm_url once the bytes are up.",
        params: LeaseParams,
        body: CreateOutputBody,
        response: { 200: OutputTicket, ...errorResponses(...leaseErrors, ...bodyErrors) },
      },
    },
    async (req) => {
      const ticket = await rpc.call("job", "workerOutput", { lease_id: req.params.lease_id, worker: worker(req), ...req.body }, callCtx(req));
      return { ...ticket, confirm_url: `/api/v1/worker/leases/${req.params.lease_id}/outputs/${ticket.file_id}/confirm` };
    },
  );

  app.post(
    "/worker/leases/:lease_id/outputs/:file_id/confirm",
    {
      schema: { tags, operationId: "confirmLeaseOutput", summary: "Record an uploaded output as a ready file", params: LeaseFileParams, response: { 200: FileObject, ...errorResponses(...leaseErrors, 422) } },
    },
    async (req) => rpc.call("job", "workerConfirmOutput", { lease_id: req.params.lease_id, worker: worker(req), file_id: req.params.file_id }, callCtx(req)),
  );

  app.post(
    "/worker/leases/:lease_id/complete",
    {
      schema: {
        tags,
        operationId: "completeLease",
        summary: "Complete the job with its result",
        description: "result.files names the confirmed outputs by file_id; the job succeeds, its credits are captured and its owner told, exactly once.",
        params: LeaseParams,
        body: CompleteBody,
        response: { 200: FinishedLease, ...errorResponses(...leaseErrors, ...bodyErrors) },
      },
    },
    async (req) => {
      const done = await rpc.call("job", "workerFinish", { lease_id: req.params.lease_id, worker: worker(req), outcome: { status: "succeeded", result: req.body.result } }, callCtx(req));
      httpWorkers?.finished(req.params.lease_id, true);
      return done;
    },
  );

  app.post(
    "/worker/leases/:lease_id/fail",
    {
      schema: {
        tags,
        operationId: "failLease",
        summary: "Fail the job",
        description: "retryable: another attempt may succeed; the job goes back queued while its type has attempts left. Otherwise it fails and its credits are released.",
        params: LeaseParams,
        body: FailBody,
        response: { 200: FinishedLease, ...errorResponses(...leaseErrors, ...bodyErrors) },
      },
    },
    async (req) => {
      const done = await rpc.call(
        "job",
        "workerFinish",
        { lease_id: req.params.lease_id, worker: worker(req), outcome: { status: "failed", error: req.body.error, ...(req.body.retryable !== undefined ? { retryable: req.body.retryable } : {}) } },
        callCtx(req),
      );
      httpWorkers?.finished(req.params.lease_id, false);
      return done;
    },
  );
}
