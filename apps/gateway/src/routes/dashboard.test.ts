import Fastify from "fastify";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { errorsPlugin } from "../plugins/errors.ts";
import { securityHeadersPlugin } from "../plugins/security-headers.ts";
import { dashboardCsp, dashboardRoutes } from "./dashboard.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The gateway's error and header plugins, an API route beside, and the dashboard served from `dir`. */
async function serve(dir: string) {
  const app = Fastify();
  await app.register(errorsPlugin);
  await app.register(securityHeadersPlugin);
  await app.register(dashboardRoutes, { dir });
  app.get("/api/v1/thing", async () => ({ ok: true }));
  return app;
}

/** A build in `<tmp>/dist`, beside a file it must never serve. */
function build(): string {
  const base = mkdtempSync(join(tmpdir(), "dashboard-"));
  dirs.push(base);
  writeFileSync(join(base, "secret.txt"), "no");
  const dir = join(base, "dist");
  mkdirSync(join(dir, "assets"), { recursive: true });
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>Cutroom</title>");
  writeFileSync(join(dir, "assets", "index-abc123.js"), "console.log(1)");
  return dir;
}

describe("the dashboard at /dashboard", () => {
  it("serves index.html at /dashboard, /dashboard/ and any page path under it, with the dashboard's CSP", async () => {
    const app = await serve(build());
    for (const url of ["/dashboard", "/dashboard/", "/dashboard/jobs/0b9f6a52-1c39-4a3e-9a55-1c2b3d4e5f60", "/dashboard/admin"]) {
      const res = await app.inject(url);
      expect(res.statusCode, url).toBe(200);
      expect(res.headers["content-type"]).toMatch(/^text\/html/);
      expect(res.body).toContain("<title>Cutroom</title>");
      expect(res.headers["content-security-policy"]).toBe(dashboardCsp);
      expect(res.headers["cache-control"]).toBe("no-cache");
    }
  });

  it("serves the hashed assets as immutable, and a missing one is 404 in the envelope, not the page", async () => {
    const app = await serve(build());
    const js = await app.inject("/dashboard/assets/index-abc123.js");
    expect(js.statusCode).toBe(200);
    expect(js.headers["content-type"]).toMatch(/javascript/);
    expect(js.headers["cache-control"]).toContain("immutable");
    const missing = await app.inject("/dashboard/assets/index-gone.js");
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
  });

  it("serves nothing outside its folder", async () => {
    const app = await serve(build());
    for (const url of ["/dashboard/../secret.txt", "/dashboard/%2e%2e/secret.txt", "/dashboard/assets/%2e%2e/%2e%2e/secret.txt"]) {
      const res = await app.inject(url);
      expect(res.body, url).not.toBe("no");
    }
  });

  it("answers 503 saying how to build it when there is no build, and serves a build made later without a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dashboard-"));
    dirs.push(dir);
    const app = await serve(join(dir, "dist"));
    const res = await app.inject("/dashboard/");
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toMatchObject({ code: "SERVICE_UNAVAILABLE", message: expect.stringContaining("npm run build -w @cutroom/dashboard") });
    mkdirSync(join(dir, "dist"));
    writeFileSync(join(dir, "dist", "index.html"), "<!doctype html><title>Cutroom</title>");
    expect((await app.inject("/dashboard/")).statusCode).toBe(200);
  });

  it("keeps the API's strict policy everywhere else", async () => {
    const app = await serve(build());
    const res = await app.inject("/api/v1/thing");
    expect(res.headers["content-security-policy"]).toContain("default-src 'none'");
  });
});
