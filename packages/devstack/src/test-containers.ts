import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CreateBucketCommand, HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { GenericContainer, Network, Wait, type StartedNetwork, type StartedTestContainer } from "testcontainers";
import type { DockerEndpoint, TestServers } from "./test-servers.ts";
import { waitFor } from "./wait.ts";

// Nothing here has run on a machine without Docker, CI's included: keep it small and plain.

const composeFile = join(import.meta.dirname, "..", "..", "..", "infra", "docker-compose.yml");
const natsNodes = ["nats-1", "nats-2", "nats-3"];
const bucket = "cutroom-test";
const s3Keys = { accessKeyId: "cutroom-test", secretAccessKey: "cutroom-test-secret" };

/** Each service's `image:` in the compose file, so the tests run the versions a Docker deployment runs. */
export function composeImages(composeText: string): Record<string, string> {
  const images: Record<string, string> = {};
  let inServices = false;
  let service: string | undefined;
  for (const line of composeText.split("\n")) {
    if (/^\S/.test(line)) {
      inServices = line.trimEnd() === "services:";
      service = undefined;
    }
    const name = /^ {2}([\w-]+):\s*$/.exec(line);
    if (inServices && name) service = name[1];
    const image = /^ {4}image:\s*(\S+)/.exec(line);
    if (image && service && !(service in images)) images[service] = image[1]!;
  }
  return images;
}

/** nats-server's arguments for one node of a JetStream cluster whose nodes reach each other by these names. */
export function natsClusterArgs(node: string, nodes: readonly string[]): string[] {
  return [
    "-js",
    "-sd",
    "/data",
    "--server_name",
    node,
    "--cluster_name",
    "cutroom-test",
    "--cluster",
    "nats://0.0.0.0:6222",
    "--routes",
    nodes.map((n) => `nats://${n}:6222`).join(","),
    // Clients reach the nodes through Docker's published ports; the addresses inside the network would not work from here.
    "--no_advertise=true",
    "-m",
    "8222",
  ];
}

/** Postgres, a 3-node NATS JetStream cluster and SeaweedFS (which checks SigV4), each in its own container. */
export async function startContainerServers(docker: DockerEndpoint | undefined): Promise<TestServers> {
  // testcontainers looks for an engine on its own; point it at the one that answered the probe.
  if (docker && "socketPath" in docker) process.env.DOCKER_HOST ??= `unix://${docker.socketPath}`;
  const images = composeImages(readFileSync(composeFile, "utf8"));
  for (const service of ["postgres", "nats", "seaweedfs"]) {
    if (!images[service]) throw new Error(`infra/docker-compose.yml names no image for ${service}`);
  }

  const containers: StartedTestContainer[] = [];
  let network: StartedNetwork | undefined;
  const stop = async () => {
    await Promise.allSettled(containers.map((c) => c.stop()));
    await network?.stop();
  };
  try {
    network = await new Network().start();
    const postgres = new GenericContainer(images.postgres!)
      .withEnvironment({ POSTGRES_USER: "cutroom", POSTGRES_PASSWORD: "cutroom", POSTGRES_DB: "cutroom" })
      // As the embedded one: nothing here needs to survive a crash, and the suite opens many connections.
      .withCommand(["postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"])
      .withExposedPorts(5432)
      // The image's entrypoint starts the server twice (the first time to initialise it).
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2));
    const seaweedfs = new GenericContainer(images.seaweedfs!)
      .withEntrypoint(["weed"])
      .withCommand(["server", "-dir=/data", "-ip.bind=0.0.0.0", "-master.volumeSizeLimitMB=256", "-volume.max=0", "-s3", "-s3.port=8333", "-s3.config=/etc/seaweedfs/s3.json"])
      .withCopyContentToContainer([{ content: seaweedIdentities(), target: "/etc/seaweedfs/s3.json" }])
      .withExposedPorts(8333)
      .withWaitStrategy(Wait.forListeningPorts());
    const natsCluster = natsNodes.map((node) =>
      new GenericContainer(images.nats!)
        .withNetwork(network!)
        .withNetworkAliases(node)
        .withCommand(natsClusterArgs(node, natsNodes))
        .withExposedPorts(4222, 8222)
        .withWaitStrategy(Wait.forHttp("/healthz", 8222)),
    );
    // All at once: a NATS node's /healthz answers only once the cluster has elected its JetStream leader.
    const results = await Promise.allSettled([postgres, seaweedfs, ...natsCluster].map((c) => c.start()));
    for (const r of results) if (r.status === "fulfilled") containers.push(r.value);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const [pg, s3, ...nats] = containers;
    const s3Endpoint = `http://${hostOf(s3!)}:${s3!.getMappedPort(8333)}`;
    await createBucket(s3Endpoint);
    return {
      databaseUrl: `postgres://cutroom:cutroom@${hostOf(pg!)}:${pg!.getMappedPort(5432)}/cutroom`,
      natsUrls: nats.map((n) => `nats://${hostOf(n)}:${n.getMappedPort(4222)}`),
      natsStreamReplicas: natsNodes.length,
      s3: { endpoint: s3Endpoint, bucket, region: "us-east-1", ...s3Keys, verifiesSignatures: true },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** 127.0.0.1 rather than localhost: the s3 driver's tests sign URLs for `localhost` as a second host name. */
const hostOf = (c: StartedTestContainer) => (c.getHost() === "localhost" ? "127.0.0.1" : c.getHost());

function seaweedIdentities(): string {
  return JSON.stringify({
    identities: [{ name: "cutroom-test", credentials: [{ accessKey: s3Keys.accessKeyId, secretKey: s3Keys.secretAccessKey }], actions: ["Admin", "Read", "List", "Tagging", "Write"] }],
  });
}

/** Through the plain S3 API, as infra/docker/create-bucket.mjs; the gateway takes requests a little after its port opens. */
async function createBucket(endpoint: string): Promise<void> {
  const s3 = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: s3Keys });
  try {
    await waitFor(
      `bucket ${bucket} on ${endpoint}`,
      async () => {
        try {
          await s3.send(new HeadBucketCommand({ Bucket: bucket }));
          return true;
        } catch (err) {
          if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw err;
          await s3.send(new CreateBucketCommand({ Bucket: bucket }));
          return true;
        }
      },
      60_000,
      500,
    );
  } finally {
    s3.destroy();
  }
}
