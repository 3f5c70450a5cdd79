import { tokenCutoffsBucket } from "./auth.ts";
import type { Queue } from "./job-types.ts";
import type { RpcMethod, RpcService } from "./rpc.ts";
import { consumers, serviceNames, streams, subjects, workerNames, type WorkerName } from "./subjects.ts";
import { httpWorkerKeyPrefix, workerControlSubject, workerRegistryBucket } from "./workers.ts";

/**
 * Who may publish and subscribe to what on NATS: one NATS user per app, so that reaching the
 * broker is not enough to call billing or end a job (docs/adr/013-nats-users-per-app.md).
 * Every subject comes from the helpers the code itself uses; nats-server enforces the lists.
 */
export interface NatsPermissions {
  publish: string[];
  subscribe: string[];
  /** May answer the requests it receives, on their reply subjects only (nats-server `allow_responses`). */
  allowResponses: boolean;
}

export const natsUserNames = ["gateway", "auth-service", "billing-service", "storage-service", "job-service", "worker-image", "worker-video", "worker-audio"] as const;
export type NatsUserName = (typeof natsUserNames)[number];

/** Apps the stack runs that never connect to NATS: the model emulator stands in for an outside API and gets no user. */
export const appsWithoutNats = ["model-emulator"] as const;

/**
 * Each app's own reply subjects. With one shared `_INBOX.>`, any app could subscribe to every
 * reply, tokens from auth.login among them; a prefix per app keeps replies to their asker.
 */
export const natsInboxPrefix = (app: string) => `_INBOX_${app}`;

export const workerQueues: Record<WorkerName, Queue> = { "worker-image": "image", "worker-video": "video", "worker-audio": "audio" };

const calls = <S extends RpcService>(service: S, methods: readonly RpcMethod<S>[]) => methods.map((m) => subjects.rpc(service, m));
const serves = (service: string) => subjects.rpc(service, "*");
const jsApi = (...tokens: string[]) => ["$JS.API", ...tokens].join(".");
const JS_ACCOUNT_INFO = jsApi("INFO");
// auth-service's token cutoffs: a KV bucket is the stream KV_<bucket> on subjects $KV.<bucket>.<key>.
const CUTOFFS_STREAM = `KV_${tokenCutoffsBucket}`;
// The worker registry (ADR 038): workers make the bucket if it is missing and put their heartbeats; the gateway watches it.
const WORKERS_STREAM = `KV_${workerRegistryBucket}`;

/** `answersAs`: the name an app answers requests under (`svc.<name>.*`), if it answers any. */
function user(app: NatsUserName, p: { publish?: string[]; subscribe?: string[]; answersAs?: string }): NatsPermissions {
  return {
    // Its own health too: the container healthcheck asks it with the app's own login (infra/docker/healthcheck.mjs).
    publish: [...(p.publish ?? []), ...(p.answersAs ? [subjects.rpc(p.answersAs, "health"), subjects.instanceHealth(p.answersAs)] : [])],
    // Each process answers its own health outside the queue group too, so the gateway counts replicas.
    subscribe: [...(p.subscribe ?? []), ...(p.answersAs ? [subjects.instanceHealth(p.answersAs)] : []), `${natsInboxPrefix(app)}.>`],
    allowResponses: p.answersAs !== undefined,
  };
}

/** RPC services a worker answers besides its health: worker-image holds the text models, so it answers synchronous model calls. */
export const workerServices: Partial<Record<WorkerName, RpcService>> = { "worker-image": "models" };

function worker(name: WorkerName): NatsPermissions {
  const consumer = consumers.worker(workerQueues[name]);
  const service = workerServices[name];
  return user(name, {
    publish: [
      ...calls("job", ["claim", "finish"]),
      ...calls("storage", ["inputUrl", "createOutput", "confirmOutput"]),
      subjects.jobEvents("*"),
      JS_ACCOUNT_INFO,
      // Reads the streams job-service made; never creates or changes them.
      jsApi("STREAM.INFO", streams.jobs.name),
      jsApi("STREAM.INFO", streams.jobEvents.name),
      // The last event of a job, for the next event's seq.
      jsApi("STREAM.MSG.GET", streams.jobEvents.name),
      // Its own durable consumer only, and only with its own queue's filter (the filter is part of the subject).
      jsApi("CONSUMER.CREATE", streams.jobs.name, consumer, subjects.jobRunQueue(workerQueues[name])),
      jsApi("CONSUMER.INFO", streams.jobs.name, consumer),
      jsApi("CONSUMER.MSG.NEXT", streams.jobs.name, consumer),
      `$JS.ACK.${streams.jobs.name}.${consumer}.>`,
      jsApi("STREAM.INFO", WORKERS_STREAM),
      jsApi("STREAM.CREATE", WORKERS_STREAM),
      `$KV.${workerRegistryBucket}.>`,
    ],
    // Webhooks of the predictions it waits on, relayed by the gateway: each only wakes its poll.
    // Its kind's control subjects: an admin's drain and resume, each instance hearing its own.
    subscribe: [subjects.jobCancel("*"), subjects.modelWebhook("*"), subjects.rpc(name, "health"), workerControlSubject(name, "*"), ...(service ? [serves(service)] : [])],
    answersAs: name,
  });
}

export const natsPermissions: Record<NatsUserName, NatsPermissions> = {
  // The only app that speaks for end users, so the only caller of the user-facing methods.
  gateway: user("gateway", {
    publish: [
      ...calls("auth", ["health", "register", "login", "refresh", "logout", "me", "jwks", "listUsers", "updateUser", "grantCredits", "stats"]),
      // Not billing.grant: admins' grants go through auth.grantCredits, which reads the caller's role from its database.
      // rate: the prompt enhancement bucket, counted before the gateway asks a worker for it.
      ...calls("billing", ["health", "balance", "ledger", "purchase", "rate"]),
      ...calls("storage", ["health", "createUpload", "confirmUpload", "createIngest", "getFile", "listFiles", "downloadUrl", "deleteFile", "stats", "createResumableUpload", "getResumableUpload", "resumableUploadUrl", "deleteResumableUpload"]),
      ...calls("storage", ["startImport", "getImport"]),
      ...calls("storage", ["usage"]),
      ...calls("job", ["health", "create", "get", "list", "cancel", "estimate", "stats", "queues", "requeue"]),
      ...calls("job", ["createBatch"]),
      ...calls("job", ["createProject", "listProjects", "getProject", "updateProject", "deleteProject", "projectAssets", "approveFiles", "projectCosts"]),
      ...calls("job", ["pipelineTypes", "createPipeline", "getPipeline", "listPipelines", "approvePipeline", "cancelPipeline"]),
      // Workers over HTTP (ADR 040): their tokens (admins'; verified per request) and their leases.
      ...calls("auth", ["createWorkerToken", "listWorkerTokens", "revokeWorkerToken", "verifyWorkerToken"]),
      ...calls("job", ["workerLease", "workerHeartbeat", "workerEvents", "workerInput", "workerOutput", "workerConfirmOutput", "workerFinish", "workerInFlight"]),
      ...Object.keys(workerQueues).map((w) => subjects.rpc(w, "health")),
      ...[...serviceNames, ...workerNames].map((name) => subjects.instanceHealth(name)),
      ...calls("models", ["enhancePrompt"]),
      // Relays a model provider's webhook (signature checked) to the worker waiting on the prediction.
      subjects.modelWebhook("*"),
      // Reads JOB_EVENTS (jobs' and pipelines' events): a job's stored events by message gets (replay), and every new one through
      // one ordered consumer per process (live), which it creates again after NATS restarts.
      JS_ACCOUNT_INFO,
      jsApi("STREAM.INFO", streams.jobEvents.name),
      jsApi("STREAM.MSG.GET", streams.jobEvents.name),
      jsApi("CONSUMER.CREATE", streams.jobEvents.name, ">"),
      jsApi("CONSUMER.INFO", streams.jobEvents.name, "*"),
      jsApi("CONSUMER.MSG.NEXT", streams.jobEvents.name, "*"),
      jsApi("CONSUMER.DELETE", streams.jobEvents.name, "*"),
      // Watches the token cutoffs (an ordered push consumer, flow-controlled) and reads one user's entry.
      jsApi("STREAM.INFO", CUTOFFS_STREAM),
      jsApi("CONSUMER.CREATE", CUTOFFS_STREAM, ">"),
      jsApi("CONSUMER.INFO", CUTOFFS_STREAM, "*"),
      jsApi("CONSUMER.DELETE", CUTOFFS_STREAM, "*"),
      jsApi("STREAM.MSG.GET", CUTOFFS_STREAM),
      jsApi("DIRECT.GET", CUTOFFS_STREAM, ">"),
      `$JS.FC.${CUTOFFS_STREAM}.>`,
      // Watches the worker registry as it watches the cutoffs, and asks one instance to drain or resume.
      jsApi("STREAM.INFO", WORKERS_STREAM),
      jsApi("CONSUMER.CREATE", WORKERS_STREAM, ">"),
      jsApi("CONSUMER.INFO", WORKERS_STREAM, "*"),
      jsApi("CONSUMER.DELETE", WORKERS_STREAM, "*"),
      `$JS.FC.${WORKERS_STREAM}.>`,
      workerControlSubject("*", "*"),
      // Records the workers over HTTP it hears from (kind http, under their own keys), making the bucket if no NATS worker has yet.
      jsApi("STREAM.CREATE", WORKERS_STREAM),
      `$KV.${workerRegistryBucket}.${httpWorkerKeyPrefix}>`,
      // Reads an HTTP worker's record before each write (compare-and-set), so that every replica keeps a drain.
      jsApi("STREAM.MSG.GET", WORKERS_STREAM),
      jsApi("DIRECT.GET", WORKERS_STREAM, ">"),
    ],
    // Live events come through its JetStream consumer (to its inbox), never straight off jobs.events.>:
    // the broker forwards there even a publish the stream refused.
    subscribe: [],
  }),
  "auth-service": user("auth-service", {
    publish: [
      ...calls("billing", ["balance", "openAccount", "throttle", "grant"]),
      // Makes the token-cutoffs bucket at start and writes to it; no other stream.
      JS_ACCOUNT_INFO,
      jsApi("STREAM.INFO", CUTOFFS_STREAM),
      jsApi("STREAM.CREATE", CUTOFFS_STREAM),
      `$KV.${tokenCutoffsBucket}.>`,
    ],
    subscribe: [serves("auth")],
    answersAs: "auth",
  }),
  "billing-service": user("billing-service", { subscribe: [serves("billing")], answersAs: "billing" }),
  "storage-service": user("storage-service", { subscribe: [serves("storage")], answersAs: "storage" }),
  // Owns the streams (creates and updates them at start) and its events consumer: the whole JetStream API.
  "job-service": user("job-service", {
    publish: [
      // balance: whether a pipeline's first stage is affordable before the run is made.
      ...calls("billing", ["rate", "reserve", "capture", "release", "balance"]),
      // projectFiles, deleteProjectFiles: a project's assets, and its files going with it.
      ...calls("storage", ["getFile", "projectFiles", "deleteProjectFiles"]),
      // jobAccess: a claim answers the job's signed storage URLs (ADR 033).
      ...calls("storage", ["jobAccess"]),
      // A worker over HTTP's fresh input URLs and output tickets go through job-service, which holds its lease (ADR 040).
      ...calls("storage", ["inputUrl", "createOutput", "confirmOutput"]),
      subjects.jobRunQueue("*"),
      subjects.jobEvents("*"),
      subjects.pipelineEvents("*"),
      subjects.jobCancel("*"),
      jsApi(">"),
      `$JS.ACK.${streams.jobEvents.name}.>`,
    ],
    subscribe: [serves("job")],
    answersAs: "job",
  }),
  "worker-image": worker("worker-image"),
  "worker-video": worker("worker-video"),
  "worker-audio": worker("worker-audio"),
};
