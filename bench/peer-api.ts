// The peer's API process: what a team would write instead of Cutroom's gateway and job-service.
// Fastify 5; @fastify/jwt verifies the bearer token (EdDSA over Ed25519, as Cutroom's tokens);
// zod checks the body; postgres.js inserts the job row (unique (user_id, idempotency_key), so a
// repeated key answers the same job); BullMQ's queue.add hands it to the worker; 202 with the row.
// WS /ws/jobs/:id relays BullMQ's QueueEvents (progress, completed, failed) to that job's sockets,
// after a snapshot of the row. Settings come from the bench (peer-stack.ts); its port goes back over IPC.
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import fastifyJwt from "@fastify/jwt";
import fastifyWebsocket from "@fastify/websocket";
import { Queue, QueueEvents } from "bullmq";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import postgres from "postgres";
import type { WebSocket } from "ws";
import { z } from "zod";

// The parent going away (even killed) ends the peer too.
process.on("disconnect", () => process.exit(0));

const env = z
  .object({
    PEER_DATABASE_URL: z.string(),
    PEER_REDIS_PORT: z.coerce.number().int(),
    PEER_JWT_PUBLIC_KEY: z.string(),
    PEER_QUEUE: z.string(),
  })
  .parse(process.env);

const connection = { host: "127.0.0.1", port: env.PEER_REDIS_PORT, maxRetriesPerRequest: null };
const queue = new Queue(env.PEER_QUEUE, {
  connection,
  defaultJobOptions: { attempts: 3, backoff: { type: "exponential", delay: 1000 } },
});
const events = new QueueEvents(env.PEER_QUEUE, { connection });
const sql = postgres(env.PEER_DATABASE_URL, { max: 10, onnotice: () => {} });

// The same input as Cutroom's image.thumbnail (packages/contracts), written out again as a team would.
const ThumbnailInput = z.object({
  file_id: z.uuid(),
  width: z.number().int().min(16).max(1024).default(256),
  height: z.number().int().min(16).max(1024).default(256),
  fit: z.enum(["cover", "contain", "fill", "inside", "outside"]).default("cover"),
  format: z.enum(["jpeg", "png", "webp", "avif"]).default("webp"),
});
const CreateJob = z.discriminatedUnion("type", [z.object({ type: z.literal("image.thumbnail"), input: ThumbnailInput })]);
const IdempotencyKey = z.string().min(1).max(200).optional();
const JobParams = z.object({ id: z.uuid() });

interface JobRow {
  id: string;
  user_id: string;
  type: string;
  input: unknown;
  status: string;
  result: unknown;
  error: string | null;
  created_at: Date;
  completed_at: Date | null;
}

// jsonb keeps keys in an order of its own: requests are compared with their keys sorted.
const canonical = (v: unknown): string =>
  v && typeof v === "object" && !Array.isArray(v)
    ? `{${Object.keys(v)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
        .join(",")}}`
    : JSON.stringify(v);

const app = Fastify();
await app.register(fastifyJwt, {
  secret: { public: env.PEER_JWT_PUBLIC_KEY },
  verify: { algorithms: ["EdDSA"], allowedIss: "peer" },
});
await app.register(fastifyWebsocket);

const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
  try {
    await req.jwtVerify();
  } catch {
    return reply.code(401).send({ error: "unauthorized" });
  }
};
const userOf = (req: FastifyRequest) => (req.user as { sub: string }).sub;

app.post("/api/v1/jobs", { preHandler: authenticate }, async (req, reply) => {
  const body = CreateJob.safeParse(req.body);
  const key = IdempotencyKey.safeParse(req.headers["idempotency-key"]);
  if (!body.success || !key.success) return reply.code(400).send({ error: "invalid request", issues: (body.error ?? key.error)?.issues });
  const userId = userOf(req);
  const [created] = await sql<JobRow[]>`
    insert into peer_jobs (id, user_id, idempotency_key, type, input, status)
    values (${randomUUID()}, ${userId}, ${key.data ?? null}, ${body.data.type}, ${sql.json(body.data.input)}, 'queued')
    on conflict (user_id, idempotency_key) do nothing
    returning *`;
  if (!created) {
    const [existing] = await sql<JobRow[]>`select * from peer_jobs where user_id = ${userId} and idempotency_key = ${key.data!}`;
    if (existing!.type !== body.data.type || canonical(existing!.input) !== canonical(body.data.input)) {
      return reply.code(409).send({ error: "idempotency key reused with another request" });
    }
    return reply.code(202).header("idempotent-replayed", "true").send(existing);
  }
  await queue.add(created.type, { user_id: userId, input: body.data.input }, { jobId: created.id });
  return reply.code(202).send(created);
});

// Sockets following each job. A socket is added before the row is read, so no event slips between.
const followers = new Map<string, Set<WebSocket>>();
const relay = (jobId: string, message: object, terminal: boolean) => {
  const sockets = followers.get(jobId);
  if (!sockets) return;
  const text = JSON.stringify(message);
  for (const socket of sockets) {
    socket.send(text);
    if (terminal) socket.close(1000, "job finished");
  }
  if (terminal) followers.delete(jobId);
};
events.on("progress", ({ jobId, data }) => relay(jobId, { type: "progress", job_id: jobId, progress: data }, false));
events.on("completed", ({ jobId, returnvalue }) => relay(jobId, { type: "completed", job_id: jobId, result: returnvalue }, true));
events.on("failed", ({ jobId, failedReason }) => relay(jobId, { type: "failed", job_id: jobId, error: failedReason }, true));

app.get("/ws/jobs/:id", { websocket: true, preValidation: authenticate }, async (socket, req) => {
  const params = JobParams.safeParse(req.params);
  if (!params.success) return socket.close(4400, "invalid job id");
  const jobId = params.data.id;
  const sockets = followers.get(jobId) ?? followers.set(jobId, new Set()).get(jobId)!;
  sockets.add(socket);
  socket.once("close", () => {
    sockets.delete(socket);
    if (sockets.size === 0 && followers.get(jobId) === sockets) followers.delete(jobId);
  });
  const [job] = await sql<JobRow[]>`select * from peer_jobs where id = ${jobId} and user_id = ${userOf(req)}`;
  // The completed event may have come (and closed the socket) while the row was read.
  if (socket.readyState !== socket.OPEN) return;
  if (!job) return socket.close(4404, "no such job");
  socket.send(JSON.stringify({ type: "snapshot", job }));
  if (job.status === "succeeded" || job.status === "failed") socket.close(1000, "job finished");
});

await events.waitUntilReady();
await app.listen({ host: "127.0.0.1", port: 0 });
process.send!({ port: (app.server.address() as AddressInfo).port }, undefined, undefined, (err) => err && process.exit(0));

process.once("SIGTERM", () => {
  void (async () => {
    await app.close();
    await Promise.allSettled([queue.close(), events.close(), sql.end()]);
    process.exit(0);
  })();
});
