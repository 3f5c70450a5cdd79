import { randomUUID } from "node:crypto";
import { createBillingHandlers } from "@cutroom/billing-service";
import { AppError, subjects, type Caller, type FileObject } from "@cutroom/contracts";
import { createEventPublisher, createRpcClient, serveRpc, type NatsConnection, type RpcHandlers } from "@cutroom/runtime";
import { createMigratedDb, silentLogger, startTestNats } from "@cutroom/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { createJobHandlers } from "./app.ts";

/**
 * job-service on a real Postgres and nats-server, with the real billing handlers beside it.
 * Test-only: each test file starts its own.
 */
export async function startJobStack() {
  const db = await createMigratedDb("jobs");
  const nats = await startTestNats();
  const log = silentLogger();
  serveRpc(await nats.connect(), "billing", createBillingHandlers({ db: db.db }), log);
  const storage = serveFiles(await nats.connect());

  const nc = await nats.connect();
  const deps = { db: db.db, nc, rpc: createRpcClient(nc, { timeoutMs: 5000 }), events: createEventPublisher(nc), log };
  serveRpc(nc, "job", createJobHandlers(deps), log);

  const client = createRpcClient(await nats.connect(), { timeoutMs: 5000 });
  const jsm = await jetstreamManager(await nats.connect());

  return {
    db,
    nats,
    deps,
    client,
    jsm,
    addFile: storage.addFile,
    /** A signed-up user with `credits` in their account. */
    newUser: async (credits = 100, role: Caller["role"] = "user"): Promise<Caller> => {
      const caller: Caller = { user_id: randomUUID(), role, tier: "free" };
      await client.call("billing", "openAccount", { user_id: caller.user_id, credits });
      return caller;
    },
    balance: (caller: Caller) => client.call("billing", "balance", { user_id: caller.user_id, tier: caller.tier }),
    /** How many messages the JOBS work queue holds for one type's subject. */
    queued: async (queue: string, type: string) => {
      const subject = subjects.jobRun(queue, type);
      const info = await jsm.streams.info("JOBS", { subjects_filter: subject });
      return info.state.subjects?.[subject] ?? 0;
    },
    stop: async () => {
      await nats.stop();
      await db.close();
    },
  };
}

/**
 * TODO: serve the real storage-service (createStorageHandlers in apps/storage-service) once it is usable;
 * it was still being written when these tests were, so this answers `getFile` the way it will: owner only.
 */
function serveFiles(nc: NatsConnection) {
  const files = new Map<string, { owner: string; file: FileObject }>();
  const getFile: RpcHandlers<"storage">["getFile"] = async ({ file_id }, ctx) => {
    const entry = files.get(file_id);
    if (!entry || entry.owner !== ctx.caller?.user_id) throw new AppError("NOT_FOUND", "file not found");
    return entry.file;
  };
  serveRpc(nc, "storage", { getFile } as Partial<RpcHandlers<"storage">> as RpcHandlers<"storage">, silentLogger());
  return {
    addFile: (owner: Caller, status: FileObject["status"] = "ready") => {
      const id = randomUUID();
      const file: FileObject = {
        id,
        filename: "in.png",
        content_type: "image/png",
        kind: "image",
        size: 1234,
        folder: "input",
        status,
        project_id: null,
        job_id: null,
        created_at: new Date().toISOString(),
      };
      files.set(id, { owner: owner.user_id, file });
      return id;
    },
  };
}

export type JobStack = Awaited<ReturnType<typeof startJobStack>>;
