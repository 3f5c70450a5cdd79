import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parse } from "yaml";
import type { z } from "zod";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..", "..");
const infra = join(root, "infra");

describe("infra/nats cluster configs", () => {
  const natsServer = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
  const installed = !natsServer.error && natsServer.status === 0;
  for (const node of [1, 2, 3]) {
    // Skipped, not failed, without nats-server: the check is the installed server's own parser.
    it.skipIf(!installed)(`node-${node}.conf passes nats-server -t (${installed ? natsServer.stdout.trim() : "skipped: nats-server is not installed"})`, () => {
      const res = spawnSync("nats-server", ["-c", join(infra, "nats", `node-${node}.conf`), "-t"], { encoding: "utf8" });
      expect(res.stderr + res.stdout).toContain("is valid");
      expect(res.status).toBe(0);
    });
  }
});

interface ComposeService {
  image?: string;
  restart?: string;
  environment?: Record<string, string | number | boolean>;
  deploy?: { replicas?: number };
}

function compose(file: string): Record<string, ComposeService> {
  return (parse(readFileSync(join(infra, file), "utf8"), { merge: true }) as { services: Record<string, ComposeService> }).services;
}

/** Compose's `${VAR:-default}` as compose would read it with VAR unset. */
const interpolate = (v: string | number | boolean) => String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1");

async function envSchema(app: string): Promise<z.ZodType> {
  const workerApp = app.startsWith("worker-");
  const file = workerApp ? join(root, "packages", "worker-runtime", "src", "env.ts") : join(root, "apps", app, "src", "env.ts");
  const mod = (await import(pathToFileURL(file).href)) as Record<string, z.ZodType>;
  return mod[workerApp ? "WorkerEnv" : "Env"]!;
}

describe.each(["docker-compose.yml", "docker-compose.cluster.yml"])("infra/%s", (file) => {
  const services = compose(file);
  const apps = Object.entries(services).filter(([, s]) => s.environment?.APP);

  it("gives every app an environment its Env schema accepts", async () => {
    expect(apps.length).toBeGreaterThanOrEqual(8);
    for (const [name, service] of apps) {
      const env = Object.fromEntries(Object.entries(service.environment!).map(([k, v]) => [k, interpolate(v)]));
      const parsed = (await envSchema(env.APP!)).safeParse(env);
      expect(parsed.success ? [] : parsed.error.issues.map((i) => `${name}: ${i.path.join(".")}: ${i.message}`)).toEqual([]);
    }
  });

  it("restarts every long-running service when it dies", () => {
    for (const [name, service] of Object.entries(services)) expect([name, service.restart]).toEqual([name, expect.stringMatching(/^(unless-stopped|always|on-failure)$/)]);
  });
});

describe("infra/docker-compose.cluster.yml", () => {
  const services = compose("docker-compose.cluster.yml");
  const count = (app: string) =>
    Object.values(services)
      .filter((s) => s.environment?.APP === app)
      .reduce((n, s) => n + (s.deploy?.replicas ?? 1), 0);

  it("runs two of every app, on all three NATS nodes with streams replicated three times", () => {
    for (const app of ["gateway", "auth-service", "billing-service", "job-service", "storage-service", "worker-image", "worker-video", "worker-audio"]) expect([app, count(app)]).toEqual([app, 2]);
    for (const service of Object.values(services).filter((s) => s.environment?.APP)) {
      expect(service.environment).toMatchObject({ NATS_URL: "nats://cutroom-nats-1:4222,nats://cutroom-nats-2:4222,nats://cutroom-nats-3:4222", NATS_STREAM_REPLICAS: "3" });
    }
    expect(Object.keys(services).filter((s) => /^cutroom-nats-\d$/.test(s))).toHaveLength(3);
  });

  it("puts both gateways behind the proxy, which passes WebSocket upgrades through", () => {
    const nginx = readFileSync(join(infra, "nginx", "cutroom.conf"), "utf8");
    const gateways = Object.entries(services).filter(([, s]) => s.environment?.APP === "gateway");
    for (const [name] of gateways) expect(nginx).toContain(`server ${name}:8000`);
    expect(nginx).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(services.proxy?.image).toMatch(/^nginx:/);
  });
});
