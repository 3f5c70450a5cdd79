import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { createNatsLogins, natsConnectOptions } from "./nats-auth.ts";
import { startNatsCluster } from "./servers.ts";
import { waitFor } from "./wait.ts";

describe("startNatsCluster", () => {
  it("runs three JetStream nodes whose 3-replica stream keeps its messages and takes new ones while a node is down", { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "nats-cluster-"));
    const logins = createNatsLogins();
    const cluster = await startNatsCluster({ dir, logins });
    const { servers, ...auth } = natsConnectOptions(cluster.url, logins);
    const nc = await connect({ servers: servers.split(","), ...auth, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    try {
      expect(cluster.urls).toHaveLength(3);
      expect(cluster.url).toBe(cluster.urls.join(","));
      expect(cluster.replicas).toBe(3);
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "CHAOS", subjects: ["chaos.>"], num_replicas: 3 });
      // The create answers before the followers are current; current() waits for them.
      await cluster.current();
      const made = (await jsm.streams.info("CHAOS")).cluster!;
      expect(made.leader).toBeTruthy();
      expect(made.replicas?.map((r) => r.current)).toEqual([true, true]);
      const js = jetstream(nc);
      await js.publish("chaos.a", "before");
      // Stop the stream's leader, the node that matters most.
      const leader = (await jsm.streams.info("CHAOS")).cluster!.leader!;
      const down = Number(leader.split("-").pop()) - 1;
      await cluster.stopNode(down);
      // A new leader is elected among the two left; until then a publish may time out.
      await waitFor("a publish with one node down", async () => (await js.publish("chaos.b", "during", { timeout: 2000 })).seq === 2, 30_000, 200);
      const info = await jsm.streams.info("CHAOS");
      expect(info.state.messages).toBe(2);
      expect(info.cluster!.leader).not.toBe(leader);
      await cluster.startNode(down);
      // The node that came back catches up: every replica current again.
      await waitFor("the stopped node to catch up", async () => {
        const c = (await jsm.streams.info("CHAOS")).cluster!;
        return c.replicas?.length === 2 && c.replicas.every((r) => r.current);
      }, 30_000, 200);
    } finally {
      await nc.close();
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
