import { request } from "node:http";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { startNats, startPostgres, startS3rver } from "./servers.ts";
import { ensureTools, ensureToolsBesideContainers } from "./tools.ts";
import { freePort } from "./wait.ts";

/**
 * The one place that decides where `npm test` gets its servers: the embedded ones (local
 * binaries and s3rver) or containers (docs/adr/017-test-servers-from-containers.md). Tests only
 * see the env it produces, never the mode.
 */
export type TestServerMode = "embedded" | "containers";

export const TestServersEnv = z.object({
  /** embedded: local Postgres, nats-server and s3rver; containers: Postgres, a 3-node NATS cluster and SeaweedFS from Docker; auto: containers when a Docker engine answers. */
  CUTROOM_TEST_SERVERS: z.enum(["embedded", "containers", "auto"]).default("auto"),
  /** Docker's own setting: where its engine listens (unix:///path or tcp://host:port). */
  DOCKER_HOST: z.string().optional(),
  /** Docker Desktop's socket is under it (~/.docker/run/docker.sock). */
  HOME: z.string().optional(),
  /** Rootless Docker's socket is in it. */
  XDG_RUNTIME_DIR: z.string().optional(),
});

/** Where a Docker engine may listen: a unix socket or a plain-HTTP TCP address. */
export type DockerEndpoint = { socketPath: string; label: string } | { host: string; port: number; label: string };

/** Answers whether a Docker engine responds at `endpoint`. */
export type DockerProbe = (endpoint: DockerEndpoint) => Promise<boolean>;

/** DOCKER_HOST when set; else the sockets of Docker Engine, rootless Docker and Docker Desktop, in that order. */
export function dockerEndpoints(env: Record<string, string | undefined>): DockerEndpoint[] {
  const e = TestServersEnv.parse(env);
  if (e.DOCKER_HOST) {
    const url = parseUrl(e.DOCKER_HOST);
    if (url.protocol === "unix:") return [{ socketPath: url.pathname, label: url.pathname }];
    // ssh:// and TLS engines are not probed: only a plain ping is. 2375 is Docker's plain-HTTP port.
    if (url.protocol === "tcp:" || url.protocol === "http:") return [{ host: url.hostname, port: Number(url.port || 2375), label: e.DOCKER_HOST }];
    return [];
  }
  const sockets = ["/var/run/docker.sock"];
  if (e.XDG_RUNTIME_DIR) sockets.push(join(e.XDG_RUNTIME_DIR, "docker.sock"));
  sockets.push(join(e.HOME ?? homedir(), ".docker", "run", "docker.sock"));
  return sockets.map((socketPath) => ({ socketPath, label: socketPath }));
}

function parseUrl(dockerHost: string): URL {
  try {
    return new URL(dockerHost);
  } catch {
    throw new Error(`DOCKER_HOST must be a URL such as unix:///var/run/docker.sock, not "${dockerHost}"`);
  }
}

/** `GET /_ping`, as the docker CLI does; an engine that does not answer within `timeoutMs` counts as absent. */
export function pingDocker(endpoint: DockerEndpoint, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const where = "socketPath" in endpoint ? { socketPath: endpoint.socketPath } : { host: endpoint.host, port: endpoint.port };
    const req = request({ ...where, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once("timeout", () => req.destroy());
    req.once("error", () => resolve(false));
    req.end();
  });
}

export interface ModeChoice {
  mode: TestServerMode;
  /** Said in `npm test`'s output: why this mode. */
  reason: string;
  /** The engine that answered, for the container mode. */
  docker?: DockerEndpoint;
}

/** CUTROOM_TEST_SERVERS decides; `auto` (the default) takes containers when a Docker engine answers. */
export async function chooseTestServerMode(env: Record<string, string | undefined>, probe: DockerProbe = pingDocker): Promise<ModeChoice> {
  const setting = TestServersEnv.safeParse(env);
  if (!setting.success) throw new Error(`CUTROOM_TEST_SERVERS must be embedded, containers or auto, not "${String(env.CUTROOM_TEST_SERVERS)}"`);
  const asked = setting.data.CUTROOM_TEST_SERVERS;
  if (asked === "embedded") return { mode: "embedded", reason: "CUTROOM_TEST_SERVERS=embedded" };
  const endpoints = dockerEndpoints(env);
  for (const endpoint of endpoints) {
    if (await probe(endpoint)) {
      const reason = asked === "containers" ? `CUTROOM_TEST_SERVERS=containers, Docker engine at ${endpoint.label}` : `Docker engine at ${endpoint.label}`;
      return { mode: "containers", reason, docker: endpoint };
    }
  }
  const where = endpoints.length > 0 ? endpoints.map((e) => e.label).join(", ") : `${setting.data.DOCKER_HOST} (only unix:// and tcp:// are probed)`;
  if (asked === "containers") {
    throw new Error(`CUTROOM_TEST_SERVERS=containers, but no Docker engine answered at ${where}: start Docker, set DOCKER_HOST to where it listens, or unset CUTROOM_TEST_SERVERS to use the embedded servers`);
  }
  return { mode: "embedded", reason: `no Docker engine at ${where}` };
}

/** What a test run's servers are, the same shape in either mode. */
export interface TestServers {
  databaseUrl: string;
  /** One URL per NATS server; all of them form one JetStream cluster when there are several. */
  natsUrls: string[];
  /** JetStream replicas the servers can hold: 1 on a single server, 3 on the cluster. */
  natsStreamReplicas: number;
  s3: { endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string; verifiesSignatures: boolean };
  stop: () => Promise<void>;
}

/**
 * The variables the tests read. Capabilities that only some servers have are set only when they
 * have them, so the embedded mode's env stays what it always was.
 */
export function testServerEnv(servers: Omit<TestServers, "stop">): Record<string, string> {
  return {
    DATABASE_URL: servers.databaseUrl,
    NATS_URL: servers.natsUrls.join(","),
    // Not NATS_STREAM_REPLICAS: the apps that tests start inherit this env, on single-node servers of their own.
    ...(servers.natsStreamReplicas > 1 ? { CUTROOM_TEST_NATS_REPLICAS: String(servers.natsStreamReplicas) } : {}),
    S3_ENDPOINT: servers.s3.endpoint,
    S3_BUCKET: servers.s3.bucket,
    S3_REGION: servers.s3.region,
    S3_ACCESS_KEY_ID: servers.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: servers.s3.secretAccessKey,
    // s3rver accepts any signature; the tests that need one refused run only where this is set.
    ...(servers.s3.verifiesSignatures ? { S3_VERIFIES_SIGNATURES: "1" } : {}),
  };
}

/** Starts the chosen servers, their data under `dir` (embedded) or in throwaway containers. */
export async function startTestServers(choice: ModeChoice, dir: string): Promise<TestServers> {
  if (choice.mode === "containers") {
    // Loaded only here: testcontainers and the S3 client are not needed without Docker.
    ensureToolsBesideContainers();
    const { startContainerServers } = await import("./test-containers.ts");
    return startContainerServers(choice.docker);
  }
  return startEmbeddedServers(dir);
}

async function startEmbeddedServers(dir: string): Promise<TestServers> {
  const { pgBin } = ensureTools();
  const [pgPort, natsPort, s3Port] = [await freePort(), await freePort(), await freePort()];
  const results = await Promise.allSettled([
    startPostgres({ pgBin, dataDir: join(dir, "pg"), port: pgPort, database: "cutroom", fast: true }),
    startNats({ storeDir: join(dir, "nats"), port: natsPort }),
    startS3rver({ dir: join(dir, "s3"), port: s3Port, bucket: "cutroom-test" }),
  ]);
  const [pgR, natsR, s3R] = results;
  if (pgR.status === "rejected" || natsR.status === "rejected" || s3R.status === "rejected") {
    // One server failed: stop the ones that did start, so none outlives this run.
    await Promise.allSettled(results.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
    const reasons = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
    throw new Error(reasons.join("; "));
  }
  const [pg, nats, s3] = [pgR.value, natsR.value, s3R.value];
  return {
    databaseUrl: pg.url,
    natsUrls: [nats.url],
    natsStreamReplicas: 1,
    // s3rver takes any key pair; these are the ones its docs use.
    s3: { endpoint: s3.url, bucket: s3.bucket, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER", verifiesSignatures: false },
    stop: async () => {
      await Promise.allSettled([pg.stop(), nats.stop(), s3.stop()]);
    },
  };
}
