import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { jobHelpers, succeeded } from "./jobs.ts";
import { useStack } from "./stack.ts";

// Short timings so that the reconciler notices within a test's patience.
const ctx = useStack({
  apps: ["auth-service", "billing-service", "storage-service", "job-service", "worker-image", "gateway"],
  env: { RECONCILE_INTERVAL_MS: "500", REDISPATCH_AFTER_MS: "2000" },
});
const jobs = jobHelpers(ctx);

describe("a broker that lost its store", () => {
  it("runs a job submitted after both streams are gone, without restarting any process", { timeout: 120_000 }, async () => {
    const u = await jobs.userWithImage();
    // One job first, so the worker lost a consumer it was pulling from.
    await jobs.runToSuccess(u.token, "image.resize", { file_id: u.fileId, width: 32 });
    const pids = [...ctx.stack.services.children].map(([name, child]) => [name, child.pid]);

    // What nats-server back with an empty store looks like to the processes: no streams, no consumers.
    const nc = await connect(ctx.stack.natsOptions());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete("JOBS");
    await jsm.streams.delete("JOB_EVENTS");

    const job = await ctx.api.post("/jobs", { type: "image.resize", input: { file_id: u.fileId, width: 24 } }, u.token);
    expect(job.status, JSON.stringify(job.body)).toBe(202);
    let final: { status: string; error?: unknown; result?: any } = { status: "queued" };
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      final = (await ctx.api.get(`/jobs/${job.body.id}`, u.token)).body;
      if (["succeeded", "failed", "canceled"].includes(final.status)) break;
    }
    succeeded(final);
    expect(final.result?.files).toHaveLength(1);
    expect([...ctx.stack.services.children].map(([name, child]) => [name, child.pid])).toEqual(pids);
    expect((await jsm.streams.info("JOBS")).config.name).toBe("JOBS");
    await nc.close();
  });
});
