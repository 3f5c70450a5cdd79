import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { composeImages, natsClusterArgs } from "./test-containers.ts";
import { chooseTestServerMode, pingDocker, startTestServers, testServerEnv, type DockerEndpoint } from "./test-servers.ts";
import { portOpen } from "./wait.ts";

const answersAt =
  (...paths: string[]) =>
  async (e: DockerEndpoint) => ("socketPath" in e ? paths.includes(e.socketPath) : paths.includes(`${e.host}:${e.port}`));
const home = { HOME: "/home/dev" };

describe("where npm test's servers come from", () => {
  it("takes the embedded servers when no Docker engine answers, and says where it looked", async () => {
    const probed: string[] = [];
    const choice = await chooseTestServerMode(home, async (e) => (probed.push(e.label), false));
    expect(choice).toEqual({ mode: "embedded", reason: "no Docker engine at /var/run/docker.sock, /home/dev/.docker/run/docker.sock" });
    expect(probed).toEqual(["/var/run/docker.sock", "/home/dev/.docker/run/docker.sock"]);
  });

  it("takes containers when a Docker engine answers on its usual socket, rootless Docker's or Docker Desktop's", async () => {
    expect(await chooseTestServerMode(home, answersAt("/var/run/docker.sock"))).toEqual({
      mode: "containers",
      reason: "Docker engine at /var/run/docker.sock",
      docker: { socketPath: "/var/run/docker.sock", label: "/var/run/docker.sock" },
    });
    const rootless = await chooseTestServerMode({ ...home, XDG_RUNTIME_DIR: "/run/user/1000" }, answersAt("/run/user/1000/docker.sock"));
    expect(rootless).toMatchObject({ mode: "containers", reason: "Docker engine at /run/user/1000/docker.sock" });
    expect(await chooseTestServerMode(home, answersAt("/home/dev/.docker/run/docker.sock"))).toMatchObject({ mode: "containers" });
  });

  it("asks only DOCKER_HOST when it is set", async () => {
    const probed: string[] = [];
    const probe = async (e: DockerEndpoint) => (probed.push(e.label), true);
    expect(await chooseTestServerMode({ ...home, DOCKER_HOST: "unix:///srv/docker.sock" }, probe)).toMatchObject({ mode: "containers", reason: "Docker engine at /srv/docker.sock" });
    expect(await chooseTestServerMode({ DOCKER_HOST: "tcp://docker.example:2376" }, answersAt("docker.example:2376"))).toMatchObject({ mode: "containers" });
    expect(probed).toEqual(["/srv/docker.sock"]);
    expect(await chooseTestServerMode({ DOCKER_HOST: "ssh://me@docker.example" }, probe)).toEqual({
      mode: "embedded",
      reason: "no Docker engine at ssh://me@docker.example (only unix:// and tcp:// are probed)",
    });
    await expect(chooseTestServerMode({ DOCKER_HOST: "docker.sock" }, probe)).rejects.toThrow(/DOCKER_HOST must be a URL/);
  });

  it("keeps to CUTROOM_TEST_SERVERS=embedded without asking Docker", async () => {
    const choice = await chooseTestServerMode({ CUTROOM_TEST_SERVERS: "embedded" }, async () => {
      throw new Error("probed");
    });
    expect(choice).toEqual({ mode: "embedded", reason: "CUTROOM_TEST_SERVERS=embedded" });
  });

  it("fails clearly when containers are asked for and no Docker engine answers", async () => {
    expect(await chooseTestServerMode({ ...home, CUTROOM_TEST_SERVERS: "containers" }, answersAt("/var/run/docker.sock"))).toMatchObject({
      mode: "containers",
      reason: "CUTROOM_TEST_SERVERS=containers, Docker engine at /var/run/docker.sock",
    });
    await expect(chooseTestServerMode({ ...home, CUTROOM_TEST_SERVERS: "containers" }, async () => false)).rejects.toThrow(
      "CUTROOM_TEST_SERVERS=containers, but no Docker engine answered at /var/run/docker.sock, /home/dev/.docker/run/docker.sock: start Docker",
    );
    await expect(chooseTestServerMode({ CUTROOM_TEST_SERVERS: "docker" })).rejects.toThrow('CUTROOM_TEST_SERVERS must be embedded, containers or auto, not "docker"');
  });
});

describe("the Docker probe", () => {
  let dir: string;
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const listen = async (handler: Parameters<typeof createServer>[1]) => {
    dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "docker-probe-"));
    const socketPath = join(dir, "docker.sock");
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(socketPath, resolve));
    return { socketPath, label: socketPath };
  };

  it("finds an engine that answers GET /_ping on its socket", async () => {
    const endpoint = await listen((req, res) => res.writeHead(req.url === "/_ping" ? 200 : 404).end("OK"));
    expect(await pingDocker(endpoint)).toBe(true);
  });

  it("finds none where no socket is, where the ping fails, or where nothing answers in time", async () => {
    const endpoint = await listen((_req, res) => res.writeHead(500).end());
    expect(await pingDocker({ socketPath: join(dir, "missing.sock"), label: "missing" })).toBe(false);
    expect(await pingDocker(endpoint)).toBe(false);
    server!.removeAllListeners("request");
    const started = Date.now();
    expect(await pingDocker(endpoint, 300)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe("what the tests are told", () => {
  it("gives the embedded servers exactly the variables the tests always had, and they answer", async () => {
    const dir = mkdtempSync(join(process.env.CUTROOM_TEST_DIR ?? tmpdir(), "test-servers-"));
    // initdb runs as the postgres user when we are root: it must reach its folder.
    chmodSync(dir, 0o755);
    const servers = await startTestServers({ mode: "embedded", reason: "" }, dir);
    try {
      const env = testServerEnv(servers);
      expect(Object.keys(env).sort()).toEqual(["DATABASE_URL", "NATS_URL", "S3_ACCESS_KEY_ID", "S3_BUCKET", "S3_ENDPOINT", "S3_REGION", "S3_SECRET_ACCESS_KEY"]);
      expect(env).toMatchObject({ S3_BUCKET: "cutroom-test", S3_REGION: "us-east-1", S3_ACCESS_KEY_ID: "S3RVER", S3_SECRET_ACCESS_KEY: "S3RVER" });
      expect(env.DATABASE_URL).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/cutroom$/);
      expect(env.NATS_URL).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      expect(env.S3_ENDPOINT).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

      const sql = postgres(env.DATABASE_URL!, { max: 1, onnotice: () => {} });
      expect(await sql`select 1 as one`).toEqual([{ one: 1 }]);
      await sql.end();
      expect(await portOpen(Number(new URL(env.NATS_URL!).port))).toBe(true);
      expect((await fetch(`${env.S3_ENDPOINT}/${env.S3_BUCKET}`)).status).toBe(200);
    } finally {
      await servers.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("tells the tests about a NATS cluster and an S3 server that checks signatures", () => {
    const env = testServerEnv({
      databaseUrl: "postgres://cutroom:cutroom@127.0.0.1:32768/cutroom",
      natsUrls: ["nats://127.0.0.1:32770", "nats://127.0.0.1:32772", "nats://127.0.0.1:32774"],
      natsStreamReplicas: 3,
      s3: { endpoint: "http://127.0.0.1:32776", bucket: "cutroom-test", region: "us-east-1", accessKeyId: "k", secretAccessKey: "s", verifiesSignatures: true },
    });
    expect(env).toEqual({
      DATABASE_URL: "postgres://cutroom:cutroom@127.0.0.1:32768/cutroom",
      NATS_URL: "nats://127.0.0.1:32770,nats://127.0.0.1:32772,nats://127.0.0.1:32774",
      CUTROOM_TEST_NATS_REPLICAS: "3",
      S3_ENDPOINT: "http://127.0.0.1:32776",
      S3_BUCKET: "cutroom-test",
      S3_REGION: "us-east-1",
      S3_ACCESS_KEY_ID: "k",
      S3_SECRET_ACCESS_KEY: "s",
      S3_VERIFIES_SIGNATURES: "1",
    });
  });
});

describe("the containers", () => {
  it("run the images the compose file runs", () => {
    const images = composeImages(readFileSync(join(import.meta.dirname, "..", "..", "..", "infra", "docker-compose.yml"), "utf8"));
    expect(images.postgres).toMatch(/^postgres:\d+/);
    expect(images.nats).toMatch(/^nats:/);
    expect(images.seaweedfs).toMatch(/seaweedfs:\d/);
  });

  it("read each service's own image, not a nested key or a comment's", () => {
    const compose = ["x-app: &app", "  image: cutroom:local", "services:", "  db:", "    # image: old:1", "    image: postgres:16", "    healthcheck:", "      image: not-this", "  nats:", "    image: nats:2.10-alpine"].join("\n");
    expect(composeImages(compose)).toEqual({ db: "postgres:16", nats: "nats:2.10-alpine" });
  });

  it("join the NATS nodes in one JetStream cluster that clients reach only by the addresses they were given", () => {
    const nodes = ["nats-1", "nats-2", "nats-3"];
    for (const node of nodes) {
      const args = natsClusterArgs(node, nodes);
      expect(args).toContain("-js");
      expect(args[args.indexOf("--server_name") + 1]).toBe(node);
      expect(args[args.indexOf("--routes") + 1]).toBe("nats://nats-1:6222,nats://nats-2:6222,nats://nats-3:6222");
      expect(args).toContain("--no_advertise=true");
    }
  });
});
