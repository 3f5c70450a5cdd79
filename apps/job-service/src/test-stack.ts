import { randomUUID } from "node:crypto";
import { createBillingHandlers } from "@cutroom/billing-service";
import { subjects, type Caller } from "@cutroom/contracts";
import type { Db } from "@cutroom/db";
import { files } from "@cutroom/db/storage";
import { defaultCatalog, type ModelProviderName } from "@cutroom/models";
import { createEventPublisher, createRpcClient, serveRpc, type NatsConnection } from "@cutroom/runtime";
import { createStorageHandlers, type StorageDeps } from "@cutroom/storage-service";
import { createMigratedDb, silentLogger, startTestNats } from "@cutroom/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createJobService } from "./app.ts";
import { Env, timingFrom, type Timing } from "./env.ts";
import { startEventsConsumer } from "./events-consumer.ts";
import { startReconciler } from "./reconciler.ts";

/**
 * job-service on a real Postgres and nats-server, with the real billing and storage handlers beside it.
 * Test-only: each test file starts its own. `lifecycle` also runs the events consumer and the reconciler.
 */
export async function startJobStack(opts: { timing?: Partial<Timing>; lifecycle?: boolean; provider?: ModelProviderName } = {}) {
  const timing: Timing = { ...timingFrom(Env.parse({})), ...opts.timing };
  const db = await createMigratedDb("jobs");
  const nats = await startTestNats();
  const log = silentLogger();
  const billingNc = await nats.connect();
  const serveBilling = () => serveRpc(billingNc, "billing", createBillingHandlers({ db: db.db }), log);
  let billing = serveBilling();
  const storage = serveFiles(await nats.connect(), db.db);

  const nc = await nats.connect();
  const models = { catalog: defaultCatalog(), provider: opts.provider ?? "none" };
  const deps = { db: db.db, nc, rpc: createRpcClient(nc, { timeoutMs: 5000 }), events: createEventPublisher(nc), log, timing, models };
  const { handlers, pipelines } = createJobService(deps);
  serveRpc(nc, "job", handlers, log);
  const lifecycle = opts.lifecycle
    ? [await startEventsConsumer({ db: db.db, nc, log, timing, pipelines }), startReconciler({ ...deps, js: jetstream(nc), jsm: await jetstreamManager(nc), pipelines })]
    : [];

  const client = createRpcClient(await nats.connect(), { timeoutMs: 5000 });
  const jsm = await jetstreamManager(await nats.connect());

  return {
    db,
    nats,
    deps,
    pipelines,
    client,
    jsm,
    addFile: storage.addFile,
    /** A signed-up user with `credits` in their account. */
    newUser: async (credits = 100, role: Caller["role"] = "user", tier: Caller["tier"] = "free"): Promise<Caller> => {
      const caller: Caller = { user_id: randomUUID(), role, tier };
      await client.call("billing", "openAccount", { user_id: caller.user_id, credits });
      return caller;
    },
    /** Stops billing until the returned function is called. */
    billingDown: async () => {
      await billing.drain();
      return () => {
        billing = serveBilling();
      };
    },
    balance: (caller: Caller) => client.call("billing", "balance", { user_id: caller.user_id, tier: caller.tier }),
    /** How many messages the JOBS work queue holds for one type's subject. */
    queued: async (queue: string, type: string) => {
      const subject = subjects.jobRun(queue, type);
      const info = await jsm.streams.info("JOBS", { subjects_filter: subject });
      return info.state.subjects?.[subject] ?? 0;
    },
    /**
     * Claims a job as its queue's turns reach it: a dispatch message serves the queue's first job waiting
     * (ADR 039), so jobs other tests left queued go first, each taken job's own message being the next turn.
     */
    claimInTurn: async (job_id: string, worker = "w1") => {
      let via = job_id;
      for (let turns = 0; turns < 200; turns++) {
        const claim = await client.call("job", "claim", { job_id: via, dispatch: 1, worker });
        if (!claim.run || claim.job?.id === job_id) return claim;
        via = claim.job!.id;
      }
      throw new Error(`job ${job_id} was not served in 200 turns`);
    },
    stop: async () => {
      for (const part of lifecycle) await part.stop();
      await nats.stop();
      await db.close();
    },
  };
}

/** A stored file as an upload leaves it, media facts included (storage measures them as it confirms). */
export interface TestFile {
  filename: string;
  contentType: string;
  width: number | null;
  height: number | null;
  durationSeconds: number | null;
  frameRate: number | null;
}

/** A 10-second 640×480 clip: it has what every job type asks of its input (a picture and a duration). */
export const testClip: TestFile = { filename: "in.mp4", contentType: "video/mp4", width: 640, height: 480, durationSeconds: 10, frameRate: 25 };

/** A 640×480 PNG, for the image types (a job refuses a file of a kind its field does not take). */
export const testImage: Partial<TestFile> = { filename: "in.png", contentType: "image/png", width: 640, height: 480, durationSeconds: null, frameRate: null };

/**
 * The real storage handlers on the same database. Their input files are recorded straight in
 * storage's table as an upload would leave them: getFile reads only the record, never the bytes.
 */
function serveFiles(nc: NatsConnection, db: Db) {
  const noBytes = new Proxy({}, { get: () => () => Promise.reject(new Error("job-service tests never move file bytes")) });
  const deps = { db, driver: noBytes, signer: noBytes, internalUrl: "http://127.0.0.1:1" } as unknown as StorageDeps;
  serveRpc(nc, "storage", createStorageHandlers(deps), silentLogger());
  return {
    addFile: async (owner: Caller, status: "pending" | "ready" = "ready", file: Partial<TestFile> = {}) => {
      const id = randomUUID();
      await db.insert(files).values({
        id,
        ownerId: owner.user_id,
        folder: "input",
        ...testClip,
        ...file,
        declaredSize: 1234,
        size: status === "ready" ? 1234 : 0,
        status,
        storageKey: `${owner.user_id}/${id}`,
      });
      return id;
    },
  };
}

export type JobStack = Awaited<ReturnType<typeof startJobStack>>;
